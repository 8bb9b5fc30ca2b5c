"""The rerank routes: POST /api/rerank (Ollama's error envelope), /v1/rerank and /rerank (OpenAI's).

The Jina/Cohere shape that llama-server and vLLM serve, so ``cohere``- and
Jina-style clients work: ``{model, query, documents, top_n?,
return_documents?, truncate?}`` -> ``{id, model, results: [{index,
relevance_score, document?}], usage}``, results sorted by score. The
model's embeddings runner builds and scores the pairs (``engine/rerank.py``:
many pairs per decode, beside other requests' inputs); this module checks
the body and the model's ``rerank`` capability and orders the scores.
"""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread
from litestar import Request, Response, Router, post
from litestar.datastructures import State

from pyllama.engine.types import RerankRequest as EngineRerankRequest
from pyllama.ids import new_id
from pyllama.model_ref import ModelRef
from pyllama.server.bodies import decode_body
from pyllama.server.checks import merged_options, parse_keep_alive_field
from pyllama.server.errors import OLLAMA_HANDLERS, OPENAI_HANDLERS, RequestError
from pyllama.server.pipeline import get_scheduler, lookup, run_pooled
from pyllama.server.relay import json_response
from pyllama.server.schemas_rerank import RerankRequest, RerankResponse, RerankResult, RerankUsage
from pyllama.store.capabilities import RERANK
from pyllama.templates.capabilities import stored_model_capabilities

NO_DOCUMENTS = '"documents" must be a non-empty list of strings or {"text": ...} objects'


def document_texts(documents: list[str | dict[str, Any]]) -> list[str]:
    """The text of each document: a string, or an object's ``text``."""
    if not documents:
        raise RequestError(NO_DOCUMENTS)
    texts = []
    for i, doc in enumerate(documents):
        text = doc if isinstance(doc, str) else doc.get("text")
        if not isinstance(text, str):
            raise RequestError(f'documents[{i}] must be a string or an object with a string "text"')
        texts.append(text)
    return texts


def check_fields(body: RerankRequest) -> None:
    """Cohere's fields we do not implement are refused rather than ignored."""
    if body.top_n is not None and body.top_n < 1:
        raise RequestError('"top_n" must be at least 1')
    if body.rank_fields is not None and body.rank_fields != ["text"]:
        raise RequestError('"rank_fields" is not supported: documents are ranked by their "text"')
    if body.max_chunks_per_doc is not None:
        raise RequestError('"max_chunks_per_doc" is not supported: a document longer than the context is '
                           'truncated (or refused with "truncate": false)')


def ranked(scores: list[float], body: RerankRequest) -> list[RerankResult]:
    """Highest score first (ties keep the request's order), cut to ``top_n``."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[:body.top_n or len(scores)]
    with_docs = bool(body.return_documents)

    def document(i: int) -> dict[str, Any] | None:
        doc = body.documents[i]
        return ({"text": doc} if isinstance(doc, str) else doc) if with_docs else None

    return [RerankResult(index=i, relevance_score=scores[i], document=document(i)) for i in order]


async def rerank(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    body = await decode_body(request, RerankRequest)
    if not body.model.strip():
        raise RequestError(f"model '{body.model}' not found", 404)
    texts = document_texts(body.documents)
    check_fields(body)
    parse_keep_alive_field(body.keep_alive)
    local = await lookup(state, body.model)
    if RERANK not in await anyio.to_thread.run_sync(stored_model_capabilities, local):
        raise RequestError(f"{json.dumps(body.model)} does not support {RERANK}")
    engine_req = EngineRerankRequest(query=body.query, documents=texts, truncate=body.truncate is not False)
    result = await run_pooled(request, get_scheduler(state), ModelRef.from_local(local), engine_req,
                              merged_options(local.parameters, body.options), body.keep_alive)
    scores = [float(v[0]) for v in result.embeddings]
    usage = RerankUsage(prompt_tokens=result.prompt_eval_count, total_tokens=result.prompt_eval_count)
    return json_response(RerankResponse(id=new_id("rerank", "hex", 24), model=body.model,
                                        results=ranked(scores, body), usage=usage))


@post("/api/rerank", status_code=200)
async def api_rerank(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    return await rerank(request, state)


@post(["/v1/rerank", "/rerank"], status_code=200)
async def compat_rerank(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    return await rerank(request, state)


rerank_routers = [
    Router(path="/", route_handlers=[api_rerank], exception_handlers=OLLAMA_HANDLERS),  # type: ignore[arg-type]
    Router(path="/", route_handlers=[compat_rerank], exception_handlers=OPENAI_HANDLERS),  # type: ignore[arg-type]
]

__all__ = ["rerank_routers"]
