"""Ollama's native inference routes: /api/generate, /api/chat, /api/embed, /api/embeddings, /api/ps.

Each handler validates (Ollama's order of checks and words), builds one
engine request, and relays the scheduler's events: NDJSON lines while
streaming (the default), one JSON object with ``"stream": false``. Errors
found before the first byte keep their HTTP status; a failure after it is a
last ``{"error": ...}`` line. When the client goes away the response's
iterator is closed, which cancels the request in the runner and frees its
slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
import msgspec
from litestar import Request, Response, Router, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.response import Stream

from pyllama.engine import EngineError, InvalidRequestError
from pyllama.engine.types import EmbedRequest as EngineEmbedRequest
from pyllama.engine.types import GenerateRequest as EngineGenerateRequest
from pyllama.scheduler import ModelRef, Scheduler
from pyllama.server.errors import RequestError
from pyllama.server.inference import (
    ROLES,
    Delta,
    Final,
    GenerationFailed,
    ModelView,
    check_capabilities,
    check_images,
    check_tools,
    check_top_logprobs,
    format_grammar,
    inspect_model,
    l2_normalize,
    merged_options,
    now_rfc3339,
    num_ctx_for,
    parse_keep_alive_field,
    parse_think,
    parsed_events,
    render,
    sampling_options,
    schedule_error,
)
from pyllama.server.models import decode_body
from pyllama.server.schemas_inference import (
    ChatRequest,
    ChatResponse,
    DebugInfo,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbedRequest,
    EmbedResponse,
    ErrorLine,
    GenerateRequest,
    GenerateResponse,
    InferenceRequest,
    Message,
    ResponseMessage,
)
from pyllama.store.errors import NotFound
from pyllama.store.layout import Store
from pyllama.store.model import LocalModel, find_model
from pyllama.store.capabilities import THINKING, TOOLS
from pyllama.templates import RenderedPrompt, chat_messages, generate_messages

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
T = TypeVar("T")
_encoder = msgspec.json.Encoder()


def get_scheduler(state: State) -> Scheduler:
    scheduler: Scheduler = state.scheduler
    return scheduler


def json_response(obj: Any, status_code: int = 200) -> Response[bytes]:
    return Response(content=_encoder.encode(obj), status_code=status_code, media_type="application/json")


async def lookup(state: State, raw: str) -> LocalModel:
    """Find a stored model off the event loop (400 invalid name, 404 not found)."""
    store: Store = state.store
    return await anyio.to_thread.run_sync(find_model, store, raw.strip())


async def unless_disconnected(request: Request[Any, Any, Any], call: Callable[[], Awaitable[T]]) -> T:
    """Await ``call`` in this task unless the client goes away first: then it is cancelled (freeing
    its queue place or slot) and the answer is Ollama's ``499 request canceled``, which nobody reads."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await call()
    except asyncio.CancelledError:
        if not gone:
            raise
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+: this task goes on normally
        if uncancel is not None:
            uncancel()
        raise RequestError("request canceled", 499) from None
    finally:
        watcher.cancel()


async def run_scheduled(request: Request[Any, Any, Any], call: Callable[[], Awaitable[T]]) -> T:
    """Await a scheduler call, turning its errors into HTTP errors before anything is sent."""
    try:
        return await unless_disconnected(request, call)
    except (RequestError, NotFound):
        raise
    except Exception as exc:  # noqa: BLE001 - every scheduling failure is reported to the client
        raise schedule_error(exc) from None


# -- streaming ------------------------------------------------------------------------


@dataclass(frozen=True)
class Framing:
    """How a stream is written: Ollama's NDJSON lines, or the /v1 routes' server-sent events."""

    media_type: str
    frame: Callable[[Any], bytes]
    error: Callable[[str], Any]
    trailer: bytes = b""


NDJSON_FRAMING = Framing(NDJSON, lambda obj: _encoder.encode(obj) + b"\n", ErrorLine)


def _objects(out: Any) -> list[Any]:
    """A chunk/final callback may give one object, several (a list) or none."""
    if out is None:
        return []
    return out if isinstance(out, list) else [out]


async def respond(request: Request[Any, Any, Any], items: AsyncIterator[Delta | Final], *, stream: bool,
                  chunk: Callable[[Delta], Any], final: Callable[[Final], Any],
                  whole: Callable[[list[Delta], Final], Any], framing: Framing = NDJSON_FRAMING) -> Response[Any]:
    """Relay parsed events: a stream of frames while streaming, else one object.

    The first event is awaited here, so a failure before any output keeps
    its HTTP status (as Ollama's "error before the first byte").
    """
    aclose = getattr(items, "aclose")
    try:
        first = await unless_disconnected(request, items.__anext__)
    except GenerationFailed as exc:
        await aclose()
        raise RequestError(str(exc), exc.status_code) from None
    except StopAsyncIteration:
        raise RequestError("the model runner ended the request without a result", 500) from None
    except BaseException:
        await aclose()
        raise

    if not stream:

        async def collect() -> tuple[list[Delta], Final]:
            deltas: list[Delta] = []
            item = first
            while not isinstance(item, Final):
                deltas.append(item)
                item = await items.__anext__()
            return deltas, item

        try:
            deltas, end = await unless_disconnected(request, collect)
        except GenerationFailed as exc:
            raise RequestError(str(exc), exc.status_code) from None
        except StopAsyncIteration:
            raise RequestError("the model runner ended the request without a result", 500) from None
        finally:
            await aclose()
        return json_response(whole(deltas, end))

    frame = framing.frame

    async def frames() -> AsyncGenerator[bytes, None]:
        item: Delta | Final = first
        try:
            while True:
                if isinstance(item, Final):
                    for obj in _objects(final(item)):
                        yield frame(obj)
                    if framing.trailer:
                        yield framing.trailer
                    return
                for obj in _objects(chunk(item)):
                    yield frame(obj)
                item = await items.__anext__()
        except GenerationFailed as exc:
            yield frame(framing.error(str(exc)))
        except StopAsyncIteration:
            yield frame(framing.error("the model runner ended the request without a result"))
        except Exception as exc:  # noqa: BLE001 - a mid-stream failure becomes the last frame
            log.exception("stream failed")
            yield frame(framing.error(str(exc) or type(exc).__name__))
        finally:
            await aclose()

    body = frames()
    # Closing the iterator after the response (also after a disconnect) cancels the engine request.
    return Stream(body, media_type=framing.media_type, status_code=200, background=BackgroundTask(body.aclose))


async def start_generation(request: Request[Any, Any, Any], view: ModelView, rendered: RenderedPrompt,
                           body: InferenceRequest, options: dict[str, Any], grammar: str,
                           started: int) -> AsyncGenerator[Delta | Final, None]:
    """Build the engine request, schedule it (errors keep their status) and return its parsed events."""
    engine_req = EngineGenerateRequest(
        prompt=rendered.prompt,
        options=sampling_options(options, grammar=grammar, stops=rendered.additional_stops, rendered=rendered),
        logprobs=body.logprobs,
        top_logprobs=body.top_logprobs,
        shift=body.shift is not False,
        truncate=body.truncate is not False,
    )
    scheduler = get_scheduler(request.app.state)
    events = await run_scheduled(request, lambda: scheduler.generate(view.ref, engine_req, options=options,
                                                                     keep_alive=body.keep_alive))
    loaded = time.perf_counter_ns()
    return parsed_events(events, rendered.output_parser(), started_ns=started, loaded_ns=loaded)


async def think_then_format(request: Request[Any, Any, Any], view: ModelView, rendered: RenderedPrompt,
                            body: InferenceRequest, options: dict[str, Any], grammar: str, started: int,
                            rerender: Callable[[str], RenderedPrompt]) -> AsyncGenerator[Delta | Final, None]:
    """``format`` on a thinking model, as Ollama does it: think unconstrained; when content begins
    after some thinking, cancel, and continue from the thinking (as a prefilled assistant turn)
    with the grammar. Output without thinking first stays unconstrained, as in Ollama."""
    thinking = ""
    first = await start_generation(request, view, rendered, body, options, "", started)
    try:
        async for item in first:
            if isinstance(item, Delta) and item.content and thinking:
                if item.thinking:
                    yield Delta(thinking=item.thinking)
                    thinking += item.thinking
                break
            if isinstance(item, Delta):
                thinking += item.thinking
            yield item
        else:
            return
    finally:
        await first.aclose()
    constrained = await anyio.to_thread.run_sync(rerender, thinking)
    second = await start_generation(request, view, constrained, body, options, grammar, started)
    try:
        async for item in second:
            yield item
    finally:
        await second.aclose()


def with_metrics(out: GenerateResponse | ChatResponse, final: Final) -> GenerateResponse | ChatResponse:
    """Copy the final chunk's metrics (nanoseconds, counts) onto a response."""
    out.total_duration = final.total_duration
    out.load_duration = final.load_duration
    out.prompt_eval_count = final.prompt_eval_count
    out.prompt_eval_duration = final.prompt_eval_duration
    out.eval_count = final.eval_count
    out.eval_duration = final.eval_duration
    return out


# -- /api/generate -------------------------------------------------------------------


@dataclass
class Prepared:
    """What a generate or chat request became before any output: parsed events to relay, or a
    finished load/unload (``done_reason``), or the rendered prompt of a debug request (with the
    model it was rendered for, whose vocabulary can count it)."""

    items: AsyncIterator[Delta | Final] | None = None
    done_reason: str = ""
    debug: DebugInfo | None = None
    view: ModelView | None = None


async def prepare_generate(request: Request[Any, Any, Any], state: State, body: GenerateRequest,
                           started: int) -> Prepared:
    """/api/generate up to its first output, in Ollama's order of checks (also used by /v1/completions)."""
    check_top_logprobs(body.top_logprobs)
    if not body.model.strip():
        raise RequestError(f"model '{body.model}' not found", 404)
    local = await lookup(state, body.model)
    keep_alive = parse_keep_alive_field(body.keep_alive)
    think = parse_think(body.think)
    scheduler = get_scheduler(state)

    if body.prompt == "" and keep_alive == 0:
        await scheduler.unload(local.name.display_shortest)
        return Prepared(done_reason="unload")
    if body.raw and (body.template or body.system or body.context):
        raise RequestError("raw mode does not support template, system, or context")
    images = check_images(body.images)
    view = await anyio.to_thread.run_sync(inspect_model, local)
    check_capabilities(view, body.model, route="generate", think=think, suffix=bool(body.suffix),
                       images=bool(images))
    options = merged_options(local.parameters, body.options)
    grammar = format_grammar(body.format)

    if body.prompt == "" and not body.debug_render_only:
        await run_scheduled(request, lambda: scheduler.load(view.ref, options=options, keep_alive=body.keep_alive))
        return Prepared(done_reason="load")

    config = state.config
    rendered = await anyio.to_thread.run_sync(
        lambda: _render_generate(view, body, think, num_ctx_for(view, options, config.context_length)))
    if body.debug_render_only:
        return Prepared(debug=DebugInfo(rendered_template=rendered.prompt, image_count=len(rendered.images)), view=view)
    return Prepared(items=await start_generation(request, view, rendered, body, options, grammar, started))


@post("/api/generate", status_code=200)
async def generate(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    started = time.perf_counter_ns()
    body = await decode_body(request, GenerateRequest)
    prepared = await prepare_generate(request, state, body, started)
    model = body.model
    if prepared.debug is not None:
        return json_response(GenerateResponse(model=model, created_at=now_rfc3339(), response="", done=False,
                                              debug_info=prepared.debug))
    if prepared.items is None:
        return json_response(GenerateResponse(model=model, created_at=now_rfc3339(), response="", done=True,
                                              done_reason=prepared.done_reason))

    def chunk(delta: Delta) -> GenerateResponse:
        return GenerateResponse(model=model, created_at=now_rfc3339(), response=delta.content,
                                thinking=delta.thinking, done=False, tool_calls=delta.tool_calls or None,
                                logprobs=delta.logprobs or None)

    def final(end: Final) -> GenerateResponse:
        out = GenerateResponse(model=model, created_at=now_rfc3339(), response="", done=True,
                               done_reason=end.done_reason, context=None if body.raw else end.context or None)
        with_metrics(out, end)
        return out

    def whole(deltas: list[Delta], end: Final) -> GenerateResponse:
        out = final(end)
        out.response = "".join(d.content for d in deltas)
        out.thinking = "".join(d.thinking for d in deltas)
        out.tool_calls = [c for d in deltas for c in d.tool_calls] or None
        out.logprobs = [lp for d in deltas for lp in d.logprobs] or None
        return out

    return await respond(request, prepared.items, stream=body.stream is not False, chunk=chunk, final=final,
                         whole=whole)


def _render_generate(view: ModelView, body: GenerateRequest, think: bool | str | None, num_ctx: int) -> RenderedPrompt:
    """Blocking: the prompt Ollama's /api/generate builds (raw, FIM, template override or the model's)."""
    context_text = ""
    if body.context:
        n_vocab = view.vocab.n_vocab
        if any(not 0 <= t < n_vocab for t in body.context):
            raise RequestError(f"invalid context: token ids must be between 0 and {n_vocab - 1}")
        context_text = view.vocab.detokenize(body.context, unparse_special=True)
    if body.raw:
        return render(view, None, [{"role": "user", "content": body.prompt}], raw=True, think=think)
    messages = generate_messages(body.prompt, system=body.system, model_system=view.local.system,
                                 model_messages=view.local.messages, images=body.images or (),
                                 use_model_messages=body.context is None)
    source = body.template or view.template_source()
    # Ollama fits the conversation into num_ctx only on its chat-like path (no suffix, no template override).
    fit = not body.suffix and not body.template and body.truncate is not False
    return render(view, source, messages, think=think, suffix=body.suffix, context_text=context_text,
                  num_ctx=num_ctx if fit else 0, truncate=fit)


# -- /api/chat ---------------------------------------------------------------------------


def _message_dict(message: Message) -> dict[str, Any]:
    """A request message in the shape the templates take (empty fields left out)."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.thinking:
        out["thinking"] = message.thinking
    if message.images:
        out["images"] = list(message.images)
    if message.tool_calls:
        calls = []
        for i, call in enumerate(message.tool_calls):
            fn: dict[str, Any] = {"index": call.function.index if call.function.index is not None else i,
                                  "name": call.function.name, "arguments": call.function.arguments}
            calls.append({"id": call.id, "function": fn} if call.id else {"function": fn})
        out["tool_calls"] = calls
    if message.tool_name:
        out["tool_name"] = message.tool_name
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    return out


def _check_messages(messages: list[Message]) -> bool:
    """Roles are lower-cased and must be known; images must be base64. Returns whether any image came."""
    any_images = False
    for i, message in enumerate(messages):
        message.role = message.role.lower()
        if message.role not in ROLES:
            raise RequestError(f"invalid role {message.role!r} in messages[{i}]: expected one of "
                               + ", ".join(ROLES))
        if message.images:
            check_images(message.images)
            any_images = True
    return any_images


async def prepare_chat(request: Request[Any, Any, Any], state: State, body: ChatRequest,
                       started: int) -> Prepared:
    """/api/chat up to its first output, in Ollama's order of checks (also used by the /v1 chat routes)."""
    check_top_logprobs(body.top_logprobs)
    if not body.model.strip():
        raise RequestError("model is required")
    local = await lookup(state, body.model)
    keep_alive = parse_keep_alive_field(body.keep_alive)
    think = parse_think(body.think)
    messages = body.messages or []
    has_images = _check_messages(messages)
    check_tools(body.tools)
    scheduler = get_scheduler(state)

    if not messages and keep_alive == 0:
        await scheduler.unload(local.name.display_shortest)
        return Prepared(done_reason="unload")
    view = await anyio.to_thread.run_sync(inspect_model, local)
    # A template without tools gets our generic tool format instead of Ollama's 400 (PYLLAMA_GENERIC_TOOLS).
    generic = bool(body.tools) and TOOLS not in view.capabilities and state.config.generic_tools
    check_capabilities(view, body.model, route="chat", think=think, tools=bool(body.tools) and not generic,
                       images=has_images)
    options = merged_options(local.parameters, body.options)
    grammar = format_grammar(body.format)

    if not messages and not body.debug_render_only:
        await run_scheduled(request, lambda: scheduler.load(view.ref, options=options, keep_alive=body.keep_alive))
        return Prepared(done_reason="load")

    num_ctx = num_ctx_for(view, options, state.config.context_length)
    conversation = chat_messages([_message_dict(m) for m in messages], model_system=local.system,
                                 model_messages=local.messages)

    def render_chat(turns: list[dict[str, Any]]) -> RenderedPrompt:
        return render(view, view.template_source(), turns, tools=body.tools, think=think, num_ctx=num_ctx,
                      truncate=body.truncate is not False, generic_tools=generic)

    rendered = await anyio.to_thread.run_sync(render_chat, conversation)
    grammar = grammar or rendered.answer_grammar  # a user ``format`` wins, as over a template's tool grammar
    if body.debug_render_only:
        return Prepared(debug=DebugInfo(rendered_template=rendered.prompt, image_count=len(rendered.images)), view=view)
    if grammar and rendered.think and THINKING in view.capabilities:
        return Prepared(items=think_then_format(
            request, view, rendered, body, options, grammar, started,
            lambda thinking: render_chat([*conversation, {"role": "assistant", "content": "", "thinking": thinking}])))
    return Prepared(items=await start_generation(request, view, rendered, body, options, grammar, started))


@post("/api/chat", status_code=200)
async def chat(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    started = time.perf_counter_ns()
    body = await decode_body(request, ChatRequest)
    prepared = await prepare_chat(request, state, body, started)
    model = body.model
    if prepared.debug is not None:
        return json_response(ChatResponse(model=model, created_at=now_rfc3339(),
                                          message=ResponseMessage(role="", content=""), done=False,
                                          debug_info=prepared.debug))
    if prepared.items is None:
        return json_response(ChatResponse(model=model, created_at=now_rfc3339(),
                                          message=ResponseMessage(role="assistant", content=""), done=True,
                                          done_reason=prepared.done_reason))

    def chunk(delta: Delta) -> ChatResponse:
        return ChatResponse(model=model, created_at=now_rfc3339(),
                            message=ResponseMessage(role="assistant", content=delta.content, thinking=delta.thinking,
                                                    tool_calls=delta.tool_calls or None),
                            done=False, logprobs=delta.logprobs or None)

    def final(end: Final) -> ChatResponse:
        out = ChatResponse(model=model, created_at=now_rfc3339(), message=ResponseMessage(role="assistant", content=""),
                           done=True, done_reason=end.done_reason)
        with_metrics(out, end)
        return out

    def whole(deltas: list[Delta], end: Final) -> ChatResponse:
        out = final(end)
        out.message = ResponseMessage(role="assistant", content="".join(d.content for d in deltas),
                                      thinking="".join(d.thinking for d in deltas),
                                      tool_calls=[c for d in deltas for c in d.tool_calls] or None)
        out.logprobs = [lp for d in deltas for lp in d.logprobs] or None
        return out

    return await respond(request, prepared.items, stream=body.stream is not False, chunk=chunk, final=final,
                         whole=whole)


# -- embeddings ----------------------------------------------------------------------------


def _embed_inputs(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise RequestError("invalid input type")


@dataclass
class Embedded:
    """/api/embed's result before encoding (``vectors`` empty for a load-only request)."""

    vectors: list[list[float]]
    load_duration: int = 0
    prompt_eval_count: int = 0


async def run_embed(request: Request[Any, Any, Any], state: State, body: EmbedRequest,
                    inputs: list[str]) -> Embedded:
    """/api/embed's work (also used by /v1/embeddings): L2-normalised, cut to ``dimensions`` and normalised again."""
    if not body.model.strip():
        raise RequestError(f"model '{body.model}' not found", 404)
    local = await lookup(state, body.model)
    parse_keep_alive_field(body.keep_alive)
    ref = ModelRef.from_local(local)
    options = merged_options(local.parameters, body.options)
    scheduler = get_scheduler(state)
    if not inputs:
        await run_scheduled(request, lambda: scheduler.load(ref, options=options, keep_alive=body.keep_alive,
                                                            embeddings=True))
        return Embedded(vectors=[])
    engine_req = EngineEmbedRequest(inputs=list(inputs), truncate=body.truncate is not False, normalize=True)
    try:
        result = await unless_disconnected(
            request, lambda: scheduler.embed(ref, engine_req, options=options, keep_alive=body.keep_alive))
    except RequestError:
        raise
    except InvalidRequestError as exc:
        raise RequestError(str(exc), 400) from None
    except EngineError as exc:
        raise RequestError(str(exc), 400 if exc.kind == "context" else 500) from None
    except Exception as exc:  # noqa: BLE001 - scheduling failures keep their status
        raise schedule_error(exc) from None
    vectors = [l2_normalize(v) for v in result.embeddings]
    if 0 < body.dimensions:
        vectors = [l2_normalize(v[: body.dimensions]) if body.dimensions < len(v) else v for v in vectors]
    return Embedded(vectors=vectors, load_duration=max(result.load_duration, 1),
                    prompt_eval_count=result.prompt_eval_count)


@post("/api/embed", status_code=200)
async def embed(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    started = time.perf_counter_ns()
    body = await decode_body(request, EmbedRequest)
    if not body.model.strip():
        raise RequestError(f"model '{body.model}' not found", 404)
    inputs = _embed_inputs(body.input)
    done = await run_embed(request, state, body, inputs)
    if not done.vectors:
        return json_response(EmbedResponse(model=body.model, embeddings=[]))
    return json_response(EmbedResponse(model=body.model, embeddings=done.vectors,
                                       total_duration=max(time.perf_counter_ns() - started, 1),
                                       load_duration=done.load_duration,
                                       prompt_eval_count=done.prompt_eval_count))


@post("/api/embeddings", status_code=200)
async def embeddings(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    body = await decode_body(request, EmbeddingRequest)
    if not body.model.strip():
        raise RequestError("model is required")
    try:
        local = await lookup(state, body.model)
    except NotFound:
        raise RequestError(f'model "{body.model}" not found, try pulling it first', 404) from None
    parse_keep_alive_field(body.keep_alive)
    ref = ModelRef.from_local(local)
    options = merged_options(local.parameters, body.options)
    scheduler = get_scheduler(state)
    if not body.prompt:
        await run_scheduled(request, lambda: scheduler.load(ref, options=options, keep_alive=body.keep_alive,
                                                            embeddings=True))
        return json_response(EmbeddingResponse(embedding=[]))
    engine_req = EngineEmbedRequest(inputs=[body.prompt], truncate=True, normalize=False)
    try:
        result = await unless_disconnected(
            request, lambda: scheduler.embed(ref, engine_req, options=options, keep_alive=body.keep_alive))
    except RequestError:
        raise
    except InvalidRequestError as exc:
        raise RequestError(str(exc), 400) from None
    except EngineError as exc:
        raise RequestError(str(exc), 500) from None
    except Exception as exc:  # noqa: BLE001 - scheduling failures keep their status
        raise schedule_error(exc) from None
    return json_response(EmbeddingResponse(embedding=list(result.embeddings[0])))


# -- /api/ps -------------------------------------------------------------------------------


@get("/api/ps")
async def ps(state: State) -> Response[bytes]:
    return json_response({"models": [m.as_dict() for m in get_scheduler(state).ps()]})


inference_router = Router(path="/", route_handlers=[generate, chat, embed, embeddings, ps])

__all__ = ["inference_router"]
