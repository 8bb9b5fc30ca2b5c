"""Reranking: query-document pairs as token sequences for a rank-pooling model.

A reranker (bge-reranker, jina-reranker, Qwen3-Reranker in GGUF) is an
embedding model whose pooled output goes through a classification head: its
"embedding" is ``n_cls_out`` floats, the first being the relevance score.
So the loop scores pairs exactly as it pools embedding inputs - each pair a
sequence, many pairs (and other requests' inputs) in one decode - and this
module only builds the pairs and fits them to the context, on the caller's
thread.

A pair is the model's rerank template (``tokenizer.chat_template.rerank``,
with ``{query}`` and ``{document}``) when the GGUF has one, tokenized with
special tokens parsed; otherwise llama.cpp's default layout, BOS query EOS SEP
document EOS, each special token present only where the vocabulary adds it
(EOS falls back to SEP when the vocabulary has none).
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from pyllama import _native
from pyllama.engine.embedding import TOO_LONG
from pyllama.engine.errors import InvalidRequestError

_FIELDS = re.compile(r"\{(query|document)\}")


def fill_template(template: str, query: str, document: str) -> str:
    """The rerank template with both fields filled in one pass, so a query
    that happens to contain ``{document}`` stays as written."""
    return _FIELDS.sub(lambda m: query if m.group(1) == "query" else document, template)


def rerank_template(model: _native.Model) -> str | None:
    """The GGUF's ``tokenizer.chat_template.rerank``, if it has one."""
    return model.chat_template_named("rerank") or None


class PairBuilder:
    """Builds the token sequence of each (query, document) pair, at most
    ``limit`` tokens: a longer pair has its document cut when ``truncate``
    and is refused otherwise. The query is never cut; one that leaves no
    room for a document is refused."""

    def __init__(self, model: _native.Model, limit: int) -> None:
        self.model = model
        self.limit = limit
        self.template = rerank_template(model)
        eos = model.token_eos if model.token_eos is not None else model.token_sep
        self.head = [model.token_bos] if model.add_bos and model.token_bos is not None else []
        self.mid = [eos] if model.add_eos and eos is not None else []
        if model.add_sep and model.token_sep is not None:
            self.mid.append(model.token_sep)
        self.tail = [eos] if model.add_eos and eos is not None else []

    def _text(self, text: str) -> list[int]:
        return [int(t) for t in self.model.tokenize(text, add_special=False, parse_special=False)]

    def _too_long(self, index: int, n_tokens: int) -> InvalidRequestError:
        return InvalidRequestError(f"document {index}: {TOO_LONG} ({n_tokens} tokens, the context holds "
                                   f"{self.limit})")

    def _query_too_long(self) -> InvalidRequestError:
        return InvalidRequestError(f"the query leaves no room for a document in the context ({self.limit} tokens)")

    def pairs(self, query: str, documents: list[str], truncate: bool) -> list[npt.NDArray[np.int32]]:
        if self.template is not None:
            return [self._templated(self.template, query, doc, i, truncate) for i, doc in enumerate(documents)]
        q = self._text(query)
        fixed = len(self.head) + len(q) + len(self.mid) + len(self.tail)
        out = []
        for i, doc in enumerate(documents):
            d = self._text(doc)
            if fixed + len(d) > self.limit:
                if not truncate:
                    raise self._too_long(i, fixed + len(d))
                if fixed >= self.limit:
                    raise self._query_too_long()
                d = d[:self.limit - fixed]
            pair = self.head + q + self.mid + d + self.tail
            if not pair:
                raise InvalidRequestError(f"document {i}: the pair has no tokens (empty query and document)")
            out.append(np.asarray(pair, dtype=np.int32))
        return out

    def _render(self, template: str, query: str, document: str) -> npt.NDArray[np.int32]:
        text = fill_template(template, query, document)
        return self.model.tokenize(text, add_special=False, parse_special=True)

    def _templated(self, template: str, query: str, doc: str, index: int,
                   truncate: bool) -> npt.NDArray[np.int32]:
        """The filled template; too long, the document is cut by its own
        tokens and the template filled again (token boundaries may move a
        little at the cut, so repeat until it fits)."""
        tokens = self._render(template, query, doc)
        if tokens.size == 0:
            raise InvalidRequestError(f"document {index}: the pair has no tokens (empty template, query and document)")
        if tokens.size <= self.limit:
            return tokens
        if not truncate:
            raise self._too_long(index, int(tokens.size))
        d = self._text(doc)
        keep = len(d)
        while tokens.size > self.limit:
            keep -= int(tokens.size) - self.limit
            if keep < 1:
                raise self._query_too_long()
            tokens = self._render(template, query, self.model.detokenize(d[:keep]))
        return tokens
