"""The one request pipeline under the four API families.

Each family's translator turns its request into a native ``ChatRequest`` or
``GenerateRequest`` and calls ``prepare_chat``/``prepare_generate`` here:
checks in Ollama's order, model lookup, capabilities, options, prompt
rendering, scheduling. What comes back is a ``Prepared``: parsed events
(``Delta``s then one ``Final``) to relay with ``relay.respond``, a finished
load/unload, or a debug render. Embeddings go through ``run_embed``. Work
that may block (GGUF reads, vocabulary loads, rendering) runs in a worker
thread via ``anyio.to_thread``.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from litestar import Request
from litestar.datastructures import State

from pyllama.engine import EngineError, InvalidRequestError
from pyllama.engine.types import EmbedRequest as EngineEmbedRequest
from pyllama.engine.types import Embeddings
from pyllama.engine.types import GenerateRequest as EngineGenerateRequest
from pyllama.engine.types import RerankRequest as EngineRerankRequest
from pyllama.model_ref import ModelRef, RunnerOptions
from pyllama.scheduler import Scheduler
from pyllama.server.checks import (
    ROLES,
    check_images,
    check_tools,
    check_top_logprobs,
    format_grammar,
    merged_options,
    parse_keep_alive_field,
    parse_think,
    sampling_options,
    schedule_error,
)
from pyllama.server.errors import RequestError
from pyllama.server.model_view import ModelView, check_capabilities, inspect_model, render
from pyllama.server.relay import Delta, Final, parsed_events, unless_disconnected
from pyllama.server.schemas_inference import ChatRequest, DebugInfo, GenerateRequest, InferenceRequest, Message
from pyllama.store.capabilities import THINKING, TOOLS
from pyllama.store.errors import NotFound
from pyllama.store.layout import Store
from pyllama.store.model import LocalModel, find_model
from pyllama.templates import RenderedPrompt, chat_messages, generate_messages

T = TypeVar("T")


def get_scheduler(state: State) -> Scheduler:
    scheduler: Scheduler = state.scheduler
    return scheduler


def runner_options(scheduler: Scheduler, view: ModelView, options: dict[str, Any]) -> RunnerOptions:
    """The runner the request needs, num_ctx decided by the scheduler (prompts are fitted to it)."""
    try:
        return scheduler.runner_options(view.ref, options)
    except InvalidRequestError as exc:
        raise RequestError(str(exc)) from None


async def lookup(state: State, raw: str) -> LocalModel:
    """Find a stored model off the event loop (400 invalid name, 404 not found)."""
    store: Store = state.store
    return await anyio.to_thread.run_sync(find_model, store, raw.strip())


async def run_scheduled(request: Request[Any, Any, Any], call: Callable[[], Awaitable[T]]) -> T:
    """Await a scheduler call, turning its errors into HTTP errors before anything is sent."""
    try:
        return await unless_disconnected(request, call)
    except (RequestError, NotFound):
        raise
    except Exception as exc:  # noqa: BLE001 - every scheduling failure is reported to the client
        raise schedule_error(exc) from None


async def start_generation(request: Request[Any, Any, Any], view: ModelView, rendered: RenderedPrompt,
                           body: InferenceRequest, options: dict[str, Any], runner: RunnerOptions, grammar: str,
                           started: int) -> AsyncGenerator[Delta | Final, None]:
    """Build the engine request, schedule it (errors keep their status) and return its parsed events."""
    engine_req = EngineGenerateRequest(
        prompt=rendered.prompt,
        options=sampling_options(options, num_ctx=runner.num_ctx, grammar=grammar, stops=rendered.additional_stops,
                                 rendered=rendered),
        logprobs=body.logprobs,
        top_logprobs=body.top_logprobs,
        shift=body.shift is not False,
        truncate=body.truncate is not False,
        images=[base64.b64decode(i) if isinstance(i, str) else bytes(i) for i in rendered.images],
    )
    scheduler = get_scheduler(request.app.state)
    events = await run_scheduled(request, lambda: scheduler.generate(view.ref, engine_req, options=runner,
                                                                     keep_alive=body.keep_alive))
    loaded = time.perf_counter_ns()
    return parsed_events(events, rendered.output_parser(), started_ns=started, loaded_ns=loaded)


async def think_then_format(request: Request[Any, Any, Any], view: ModelView, rendered: RenderedPrompt,
                            body: InferenceRequest, options: dict[str, Any], runner: RunnerOptions, grammar: str,
                            started: int, rerender: Callable[[str], RenderedPrompt]) -> AsyncGenerator[Delta | Final, None]:
    """``format`` on a thinking model, as Ollama does it: think unconstrained; when content begins
    after some thinking, cancel, and continue from the thinking (as a prefilled assistant turn)
    with the grammar. Output without thinking first stays unconstrained, as in Ollama."""
    thinking = ""
    first = await start_generation(request, view, rendered, body, options, runner, "", started)
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
    second = await start_generation(request, view, constrained, body, options, runner, grammar, started)
    try:
        async for item in second:
            yield item
    finally:
        await second.aclose()


# -- /api/generate and /api/chat up to their first output -------------------------


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

    runner = runner_options(scheduler, view, options)
    rendered = await anyio.to_thread.run_sync(lambda: _render_generate(view, body, think, runner.num_ctx))
    if body.debug_render_only:
        return Prepared(debug=DebugInfo(rendered_template=rendered.prompt, image_count=len(rendered.images)), view=view)
    return Prepared(items=await start_generation(request, view, rendered, body, options, runner, grammar, started))


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


# -- /api/chat -----------------------------------------------------------------------------


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


def check_messages(messages: list[Message]) -> bool:
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
    has_images = check_messages(messages)
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

    runner = runner_options(scheduler, view, options)
    conversation = chat_messages([_message_dict(m) for m in messages], model_system=local.system,
                                 model_messages=local.messages)

    def render_chat(turns: list[dict[str, Any]]) -> RenderedPrompt:
        return render(view, view.template_source(), turns, tools=body.tools, think=think, num_ctx=runner.num_ctx,
                      truncate=body.truncate is not False, generic_tools=generic)

    rendered = await anyio.to_thread.run_sync(render_chat, conversation)
    grammar = grammar or rendered.answer_grammar  # a user ``format`` wins, as over a template's tool grammar
    if body.debug_render_only:
        return Prepared(debug=DebugInfo(rendered_template=rendered.prompt, image_count=len(rendered.images)), view=view)
    if grammar and rendered.think and THINKING in view.capabilities:
        return Prepared(items=think_then_format(
            request, view, rendered, body, options, runner, grammar, started,
            lambda thinking: render_chat([*conversation, {"role": "assistant", "content": "", "thinking": thinking}])))
    return Prepared(items=await start_generation(request, view, rendered, body, options, runner, grammar, started))


async def relayed_items(prepared: Prepared) -> AsyncIterator[Delta | Final]:
    """The events to relay; a load-only request (empty prompt) is just its end, as Ollama relays it."""
    if prepared.items is not None:
        return prepared.items

    async def finished() -> AsyncGenerator[Delta | Final, None]:
        yield Final(done_reason=prepared.done_reason, context=[], total_duration=0, load_duration=0,
                    prompt_eval_count=0, prompt_eval_duration=0, eval_count=0, eval_duration=0)

    return finished()


# -- embeddings ----------------------------------------------------------------------------


async def run_embed(request: Request[Any, Any, Any], state: State, local: LocalModel, inputs: Sequence[str], *,
                    options: dict[str, Any] | None, keep_alive: Any, truncate: bool = True, normalize: bool = True,
                    context_status: int = 400) -> Embeddings | None:
    """Embed ``inputs`` with a stored model (None: nothing to embed, the model was only loaded).

    A too-long input with truncation off is ``context_status``; other engine failures are 500s.
    """
    parse_keep_alive_field(keep_alive)
    ref = ModelRef.from_local(local)
    merged = merged_options(local.parameters, options)
    scheduler = get_scheduler(state)
    if not inputs:
        await run_scheduled(request, lambda: scheduler.load(ref, options=merged, keep_alive=keep_alive,
                                                            embeddings=True))
        return None
    engine_req = EngineEmbedRequest(inputs=list(inputs), truncate=truncate, normalize=normalize)
    return await run_pooled(request, scheduler, ref, engine_req, merged, keep_alive, context_status)


async def run_pooled(request: Request[Any, Any, Any], scheduler: Scheduler, ref: ModelRef,
                     engine_req: EngineEmbedRequest | EngineRerankRequest, options: dict[str, Any],
                     keep_alive: Any, context_status: int = 400) -> Embeddings:
    """Run an embedding (or rerank) request on the model's embeddings runner, its errors as HTTP errors."""
    try:
        return await unless_disconnected(
            request, lambda: scheduler.embed(ref, engine_req, options=options, keep_alive=keep_alive))
    except RequestError:
        raise
    except InvalidRequestError as exc:
        raise RequestError(str(exc), 400) from None
    except EngineError as exc:
        raise RequestError(str(exc), context_status if exc.kind == "context" else 500) from None
    except Exception as exc:  # noqa: BLE001 - scheduling failures keep their status
        raise schedule_error(exc) from None


def l2_normalize(vector: Sequence[float]) -> list[float]:
    """Ollama's normalisation (NaN/Inf is a 400)."""
    total = 0.0
    for v in vector:
        if not math.isfinite(v):
            raise RequestError("embedding contains NaN or Inf values")
        total += v * v
    scale = 1.0 / max(math.sqrt(total), 1e-12)
    return [v * scale for v in vector]


def embedding_vectors(result: Embeddings, dimensions: int) -> list[list[float]]:
    """/api/embed's vectors: L2-normalised, cut to ``dimensions`` and normalised again."""
    vectors = [l2_normalize(v) for v in result.embeddings]
    if 0 < dimensions:
        vectors = [l2_normalize(v[:dimensions]) if dimensions < len(v) else v for v in vectors]
    return vectors
