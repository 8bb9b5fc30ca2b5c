"""Wire types of the rerank routes: the Jina/Cohere shape llama-server and vLLM serve."""

from __future__ import annotations

from typing import Any

import msgspec


class RerankRequest(msgspec.Struct, kw_only=True):
    """POST /api/rerank, /v1/rerank, /rerank. A document is a string or an
    object with ``text`` (its other fields come back with it when
    ``return_documents``). ``rank_fields`` (other than ``["text"]``) and
    ``max_chunks_per_doc`` are Cohere's and refused; ``options`` and
    ``keep_alive`` work as in /api/embed."""

    model: str = ""
    query: str
    documents: list[str | dict[str, Any]]
    top_n: int | None = None
    return_documents: bool | None = None
    truncate: bool | None = None
    rank_fields: list[str] | None = None
    max_chunks_per_doc: int | None = None
    options: dict[str, Any] | None = None
    keep_alive: Any = None


class RerankResult(msgspec.Struct, omit_defaults=True):
    """One document's score; ``index`` is its place in the request."""

    index: int
    relevance_score: float
    document: dict[str, Any] | None = None


class RerankUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class RerankResponse(msgspec.Struct):
    """Results sorted by ``relevance_score``, highest first (at most ``top_n``)."""

    id: str
    model: str
    results: list[RerankResult]
    usage: RerankUsage
