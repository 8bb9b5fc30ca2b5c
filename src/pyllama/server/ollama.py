"""Ollama's native inference routes: /api/generate, /api/chat, /api/embed, /api/embeddings, /api/ps.

Each handler decodes its body, runs it through the pipeline (Ollama's order
of checks and words) and shapes the parsed output: NDJSON lines while
streaming (the default), one JSON object with ``"stream": false``. Errors
found before the first byte keep their HTTP status; a failure after it is a
last ``{"error": ...}`` line. When the client goes away the response's
iterator is closed, which cancels the request in the runner and frees its
slot.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from litestar import Request, Response, Router, get, post
from litestar.datastructures import State

from pyllama.server.checks import decode_body
from pyllama.server.errors import RequestError
from pyllama.server.pipeline import (
    Prepared,
    embedding_vectors,
    get_scheduler,
    lookup,
    prepare_chat,
    prepare_generate,
    run_embed,
)
from pyllama.server.relay import Delta, Final, json_response, now_rfc3339, respond
from pyllama.server.schemas_inference import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbedRequest,
    EmbedResponse,
    GenerateRequest,
    GenerateResponse,
    ResponseMessage,
)
from pyllama.store.errors import NotFound

R = TypeVar("R", GenerateResponse, ChatResponse)
B = TypeVar("B", GenerateRequest, ChatRequest)


def with_metrics(out: R, final: Final) -> R:
    """Copy the final chunk's metrics (nanoseconds, counts) onto a response."""
    out.total_duration = final.total_duration
    out.load_duration = final.load_duration
    out.prompt_eval_count = final.prompt_eval_count
    out.prompt_eval_duration = final.prompt_eval_duration
    out.eval_count = final.eval_count
    out.eval_duration = final.eval_duration
    out.draft_count = final.draft_count
    out.draft_accepted_count = final.draft_accepted_count
    return out


EMPTY = Delta()


async def answer(request: Request[Any, Any, Any], state: State, body_type: type[B],
                 prepare: Callable[[Request[Any, Any, Any], State, B, int], Awaitable[Prepared]],
                 reply: Callable[..., Any], final_fields: Callable[[B, Final], dict[str, Any]]) -> Response[Any]:
    """Decode, run the pipeline and relay: ``reply(body, done, delta, **fields)`` shapes one response object."""
    started = time.perf_counter_ns()
    body = await decode_body(request, body_type)
    prepared = await prepare(request, state, body, started)
    if prepared.debug is not None:
        return json_response(reply(body, False, debug_info=prepared.debug))
    if prepared.items is None:
        return json_response(reply(body, True, done_reason=prepared.done_reason))

    def final(end: Final, whole: Delta = EMPTY) -> Any:
        return with_metrics(reply(body, True, whole, done_reason=end.done_reason, **final_fields(body, end)), end)

    return await respond(request, prepared.items, stream=body.stream is not False,
                         chunk=lambda delta: reply(body, False, delta), final=final,
                         whole=lambda deltas, end: final(end, Delta.joined(deltas)))


def generate_reply(body: GenerateRequest, done: bool, delta: Delta = EMPTY, **fields: Any) -> GenerateResponse:
    return GenerateResponse(model=body.model, created_at=now_rfc3339(), response=delta.content,
                            thinking=delta.thinking, done=done, tool_calls=delta.tool_calls or None,
                            logprobs=delta.logprobs or None, **fields)


def chat_reply(body: ChatRequest, done: bool, delta: Delta = EMPTY, **fields: Any) -> ChatResponse:
    role = "" if "debug_info" in fields else "assistant"
    message = ResponseMessage(role=role, content=delta.content, thinking=delta.thinking,
                              tool_calls=delta.tool_calls or None)
    return ChatResponse(model=body.model, created_at=now_rfc3339(), message=message, done=done,
                        logprobs=delta.logprobs or None, **fields)


@post("/api/generate", status_code=200)
async def generate(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    return await answer(request, state, GenerateRequest, prepare_generate, generate_reply,
                        lambda body, end: {"context": None if body.raw else end.context or None})


@post("/api/chat", status_code=200)
async def chat(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    return await answer(request, state, ChatRequest, prepare_chat, chat_reply, lambda body, end: {})


# -- embeddings ----------------------------------------------------------------------------


def _embed_inputs(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise RequestError("invalid input type")


@post("/api/embed", status_code=200)
async def embed(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    started = time.perf_counter_ns()
    body = await decode_body(request, EmbedRequest)
    if not body.model.strip():
        raise RequestError(f"model '{body.model}' not found", 404)
    inputs = _embed_inputs(body.input)
    local = await lookup(state, body.model)
    result = await run_embed(request, state, local, inputs, options=body.options, keep_alive=body.keep_alive,
                             truncate=body.truncate is not False)
    if result is None:
        return json_response(EmbedResponse(model=body.model, embeddings=[]))
    return json_response(EmbedResponse(model=body.model, embeddings=embedding_vectors(result, body.dimensions),
                                       total_duration=max(time.perf_counter_ns() - started, 1),
                                       load_duration=max(result.load_duration, 1),
                                       prompt_eval_count=result.prompt_eval_count))


@post("/api/embeddings", status_code=200)
async def embeddings(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    body = await decode_body(request, EmbeddingRequest)
    if not body.model.strip():
        raise RequestError("model is required")
    try:
        local = await lookup(state, body.model)
    except NotFound:
        raise RequestError(f'model "{body.model}" not found, try pulling it first', 404) from None
    result = await run_embed(request, state, local, [body.prompt] if body.prompt else [], options=body.options,
                             keep_alive=body.keep_alive, normalize=False, context_status=500)
    return json_response(EmbeddingResponse(embedding=list(result.embeddings[0]) if result is not None else []))


# -- /api/ps -------------------------------------------------------------------------------


@get("/api/ps")
async def ps(state: State) -> Response[bytes]:
    return json_response({"models": [m.as_dict() for m in get_scheduler(state).ps()]})


inference_router = Router(path="/", route_handlers=[generate, chat, embed, embeddings, ps])

__all__ = ["inference_router"]
