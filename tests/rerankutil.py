"""Reference scores for the rerank tests: each pair decoded alone through the low-level binding."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pyllama import _native

# A rerank template in the shape llama.cpp reads (``tokenizer.chat_template.rerank``).
RERANK_TEMPLATE = "[CLS] query: {query} [SEP] document: {document} [SEP]"
QUERY = "What do giant pandas eat?"
DOCUMENTS = [
    "Giant pandas eat bamboo almost exclusively.",
    "The stock market closed higher on Friday.",
    "Pandas are bears native to China.",
    "Paris is the capital of France.",
    "A recipe for bamboo shoot soup.",
]


def default_pair(model: _native.Model, query: str, document: str) -> list[int]:
    """llama.cpp's pair layout for a BERT vocabulary: [CLS] query [SEP] document (it adds BOS and SEP, no EOS)."""
    assert model.add_bos and model.add_sep and not model.add_eos
    q = model.tokenize(query, add_special=False).tolist()
    d = model.tokenize(document, add_special=False).tolist()
    return [model.token_bos, *q, model.token_sep, *d]


def binding_scores(path: Path, pairs: Sequence[Sequence[int]]) -> list[float]:
    """The pairs' rank outputs from one decode, each pair its own sequence, as
    the engine packs them. (With flash attention on, which the engine leaves
    to llama.cpp, the f16 rounding inside attention depends on what else is
    in the batch, so a pair decoded alone can differ in the third decimal.)"""
    model = _native.Model(str(path))
    ctx = _native.Context(model, n_ctx=512, n_batch=512, n_ubatch=512, n_seq_max=16, kv_unified=True,
                          embeddings=True, pooling="rank", n_threads=1)
    batch = _native.Batch(512)
    for seq, tokens in enumerate(pairs):
        batch.add_arrays(list(tokens), range(len(tokens)), [seq] * len(tokens), [True] * len(tokens))
    ctx.decode(batch)
    return [float(ctx.seq_embeddings(seq)[0]) for seq in range(len(pairs))]
