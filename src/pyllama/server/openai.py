"""The OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models.

As in Ollama, each request is translated into the native request
(/api/chat, /api/generate, /api/embed) and runs through the same pipeline
(``pipeline.prepare_chat``, ``prepare_generate``, ``run_embed``); only the
wire format differs: ``stream`` defaults to false, streams are server-sent
events ending ``data: [DONE]``, tool-call arguments are JSON strings,
``temperature``/``top_p`` default to 1.0, and errors use OpenAI's envelope
(``errors.openai_error_response``).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio.to_thread
import msgspec
from litestar import Request, Response, Router, get, post
from litestar.datastructures import State

from pyllama.ids import new_id
from pyllama.server.checks import decode_body, decode_image_url, think_from_effort
from pyllama.server.errors import OPENAI_HANDLERS, RequestError, openai_error
from pyllama.server.pipeline import Prepared, embedding_vectors, lookup, prepare_chat, prepare_generate, relayed_items, run_embed
from pyllama.server.relay import SSE, Delta, Final, Framing, json_response, respond
from pyllama.server.schemas_inference import ChatRequest, DebugInfo, GenerateRequest, Message, ResponseToolCall
from pyllama.server.schemas_inference import ToolCall as NativeToolCall
from pyllama.server.schemas_inference import ToolCallFunction as NativeToolCallFunction
from pyllama.server.schemas_openai import (
    ChatCompletionRequest,
    ChatMessage,
    ChoiceLogprobs,
    Completion,
    CompletionRequest,
    EmbeddingItem,
    EmbeddingList,
    EmbeddingsRequest,
    EmbeddingUsage,
    ModelEntry,
    ModelList,
    OutFunction,
    OutMessage,
    OutToolCall,
    ToolCall,
    Usage,
)
from pyllama.store.layout import Store
from pyllama.store.model import find_model

FINGERPRINT = "fp_ollama"
B = TypeVar("B", ChatCompletionRequest, CompletionRequest)
N = TypeVar("N", ChatRequest, GenerateRequest)
_encoder = msgspec.json.Encoder()


def _sse(obj: Any) -> bytes:
    return b"data: " + _encoder.encode(obj) + b"\n\n"


SSE_FRAMING = Framing(SSE, _sse, lambda message: openai_error(message, 500), trailer=b"data: [DONE]\n\n")


# -- request translation ---------------------------------------------------------------------


def stop_list(value: Any, *, strict: bool) -> list[str] | None:
    """``stop`` as a list: a string is one stop; in a list, non-strings are dropped (chat) or a 400 (completions)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        stops = []
        for item in value:
            if isinstance(item, str):
                stops.append(item)
            elif strict:
                raise RequestError(f"invalid type for 'stop' field: {_go_type(item)}")
        return stops
    raise RequestError(f"invalid type for 'stop' field: {_go_type(value)}")


def _go_type(value: Any) -> str:
    """How Go's ``%T`` names a decoded JSON value (Ollama's error wording)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float64"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    return "<nil>" if value is None else "string"


def native_tool_calls(calls: list[ToolCall] | None) -> list[NativeToolCall] | None:
    """OpenAI tool calls (arguments as a JSON string) -> native ones (arguments as an object)."""
    if calls is None:
        return None
    out = []
    for call in calls:
        arguments = call.function.arguments
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                raise RequestError("invalid tool call arguments") from None
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise RequestError("invalid tool call arguments")
        out.append(NativeToolCall(id=call.id, function=NativeToolCallFunction(name=call.function.name,
                                                                              arguments=arguments)))
    return out


def _tool_name(messages: list[ChatMessage], message: ChatMessage) -> str:
    """A tool result's function name: its ``name``, else the call it answers (last one wins)."""
    if message.name or not message.tool_call_id:
        return message.name
    for earlier in reversed(messages):
        for call in earlier.tool_calls or ():
            if call.id == message.tool_call_id:
                return call.function.name
    return ""


def native_messages(messages: list[ChatMessage]) -> list[Message]:
    """OpenAI messages -> native ones; a content-part array becomes one native message per part."""
    out: list[Message] = []
    for message in messages:
        tool_name = _tool_name(messages, message) if message.role.lower() == "tool" else ""
        content = message.content
        if isinstance(content, str):
            out.append(Message(role=message.role, content=content, thinking=message.reasoning,
                               tool_calls=native_tool_calls(message.tool_calls), tool_name=tool_name,
                               tool_call_id=message.tool_call_id))
        elif isinstance(content, list):
            for part in content:
                out.append(_part_message(message.role, part))
            if out and message.tool_calls:
                last = out[-1]
                last.tool_calls = native_tool_calls(message.tool_calls)
                last.tool_name = tool_name
                last.tool_call_id = message.tool_call_id
                last.thinking = message.reasoning
        else:
            if message.tool_calls is None:
                raise RequestError(f"invalid message content type: {_go_type(content)}")
            out.append(Message(role=message.role, thinking=message.reasoning,
                               tool_calls=native_tool_calls(message.tool_calls), tool_call_id=message.tool_call_id))
    return out


def _part_message(role: str, part: Any) -> Message:
    if not isinstance(part, dict):
        raise RequestError("invalid message format")
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise RequestError("invalid message format")
        return Message(role=role, content=text)
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise RequestError("invalid message format")
        return Message(role=role, images=[decode_image_url(url)])
    if kind == "input_audio":
        audio = part.get("input_audio")
        data = audio.get("data") if isinstance(audio, dict) else None
        if not isinstance(data, str):
            raise RequestError("invalid message format")
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError("invalid audio input") from None
        # Ollama attaches audio as media beside images; a model without that input answers 400.
        return Message(role=role, images=[data])
    raise RequestError("invalid message format")


def chat_request(body: ChatCompletionRequest) -> ChatRequest:
    """The native /api/chat request Ollama builds from an OpenAI chat completion request."""
    if not body.messages:
        raise RequestError("[] is too short - 'messages'")
    messages = native_messages(body.messages)
    options: dict[str, Any] = {}
    stops = stop_list(body.stop, strict=False)
    if stops is not None:
        options["stop"] = stops
    max_tokens = body.max_tokens if body.max_tokens is not None else body.max_completion_tokens
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    options["temperature"] = 1.0 if body.temperature is None else body.temperature
    if body.seed is not None:
        options["seed"] = body.seed
    if body.frequency_penalty is not None:
        options["frequency_penalty"] = body.frequency_penalty
    if body.presence_penalty is not None:
        options["presence_penalty"] = body.presence_penalty
    options["top_p"] = 1.0 if body.top_p is None else body.top_p
    if body.lora is not None:
        options["lora"] = body.lora
    fmt: Any = None
    if body.response_format is not None:
        kind = body.response_format.type.strip().lower()
        if kind == "json_object":
            fmt = "json"
        elif kind == "json_schema" and body.response_format.json_schema is not None:
            fmt = body.response_format.json_schema.schema
    effort = body.reasoning.effort if body.reasoning is not None and body.reasoning.effort else body.reasoning_effort
    return ChatRequest(model=body.model, messages=messages, options=options, format=fmt, stream=bool(body.stream),
                       tools=body.tools, think=think_from_effort(effort), logprobs=bool(body.logprobs),
                       top_logprobs=body.top_logprobs or 0, debug_render_only=body.debug_render_only)


def generate_request(body: CompletionRequest) -> GenerateRequest:
    """The native /api/generate request Ollama builds from an OpenAI completion request."""
    options: dict[str, Any] = {}
    stops = stop_list(body.stop, strict=True)
    if stops is not None:
        options["stop"] = stops
    if body.max_tokens is not None:
        options["num_predict"] = body.max_tokens
    options["temperature"] = 1.0 if body.temperature is None else body.temperature
    if body.seed is not None:
        options["seed"] = body.seed
    options["frequency_penalty"] = body.frequency_penalty or 0.0
    options["presence_penalty"] = body.presence_penalty or 0.0
    options["top_p"] = body.top_p if body.top_p else 1.0
    if body.lora is not None:
        options["lora"] = body.lora
    top = body.logprobs if body.logprobs is not None and body.logprobs > 0 else 0
    return GenerateRequest(model=body.model, prompt=body.prompt, suffix=body.suffix, options=options,
                           stream=bool(body.stream), logprobs=top > 0, top_logprobs=top,
                           debug_render_only=body.debug_render_only)


# -- response translation --------------------------------------------------------------------


def openai_tool_calls(calls: list[ResponseToolCall]) -> list[OutToolCall]:
    out = []
    for call in calls:
        fn = call.function
        if fn is None:
            continue
        out.append(OutToolCall(id=call.id, index=fn.index, type="function",
                               function=OutFunction(name=fn.name, arguments=json.dumps(fn.arguments,
                                                                                       ensure_ascii=False))))
    return out


def usage_of(final: Final) -> Usage:
    return Usage(prompt_tokens=final.prompt_eval_count, completion_tokens=final.eval_count,
                 total_tokens=final.prompt_eval_count + final.eval_count)


Envelope = Callable[[str, list[dict[str, Any]], Usage | None], Completion]


def envelopes(prefix: str, model: str) -> Envelope:
    """Completion objects of one response: same id (``chatcmpl-123``/``cmpl-123``), created time and model."""
    cid, created = new_id(prefix, "number", 999, sep="-"), int(time.time())

    def envelope(obj: str, choices: list[dict[str, Any]], usage: Usage | None = None) -> Completion:
        return Completion(id=cid, object=obj, created=created, model=model, system_fingerprint=FINGERPRINT,
                          choices=choices, usage=usage)

    return envelope


def choice(logprobs: list[Any] | None = None, **fields: Any) -> dict[str, Any]:
    """One ``choices`` entry, fields in the order given; ``logprobs`` only when there are some."""
    if logprobs:
        fields["logprobs"] = ChoiceLogprobs(content=logprobs)
    return fields


def debug_response(out: Completion, debug: DebugInfo) -> Response[bytes]:
    out.debug_info = debug
    return json_response(out)


@dataclass
class Opened(Generic[B]):
    """A /v1 request decoded and run up to its first output: what shaping its answer needs."""

    body: B
    envelope: Envelope
    include_usage: bool


Shape = dict[str, Callable[..., Any]]  # respond()'s chunk, final and whole


@dataclass(frozen=True)
class V1Route(Generic[B, N]):
    """One /v1 generation route: its body, the native request it becomes, and how its answer is shaped."""

    body_type: type[B]
    translate: Callable[[B], N]
    prepare: Callable[[Request[Any, Any, Any], State, N, int], Awaitable[Prepared]]
    prefix: str  # of the completion id: chatcmpl-…, cmpl-…
    kind: str  # the ``object`` of a whole answer
    shape: Callable[[Opened[B]], Shape]


async def answer_v1(request: Request[Any, Any, Any], state: State, route: V1Route[B, N]) -> Response[Any]:
    """Decode, translate into the native request, run the pipeline and relay in the route's shape
    (a render-only debug request is answered as one object of the route's kind)."""
    started = time.perf_counter_ns()
    body = await decode_body(request, route.body_type)
    prepared = await route.prepare(request, state, route.translate(body), started)
    envelope = envelopes(route.prefix, body.model)
    if prepared.debug is not None:
        return debug_response(envelope(route.kind, []), prepared.debug)
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    shape = route.shape(Opened(body, envelope, include_usage))
    return await respond(request, await relayed_items(prepared), stream=bool(body.stream), framing=SSE_FRAMING,
                         **shape)


def chat_shape(opened: Opened[ChatCompletionRequest]) -> Shape:
    envelope = opened.envelope
    tool_calls_sent = False

    def delta_chunk(message: OutMessage, logprobs: list[Any] | None = None) -> Completion:
        return envelope("chat.completion.chunk", [choice(logprobs, index=0, delta=message, finish_reason=None)])

    def chunk(delta: Delta) -> list[Completion]:
        nonlocal tool_calls_sent
        calls = openai_tool_calls(delta.tool_calls) or None
        tool_calls_sent = tool_calls_sent or bool(calls)
        out = []
        if delta.thinking and (delta.content or calls):  # reasoning first, in a chunk of its own
            out.append(delta_chunk(OutMessage(role="assistant", content="", reasoning=delta.thinking)))
            delta.thinking = ""
        out.append(delta_chunk(OutMessage(role="assistant", content=delta.content, reasoning=delta.thinking,
                                          tool_calls=calls), delta.logprobs))
        return out

    def final(end: Final) -> list[Completion]:
        reason = "tool_calls" if tool_calls_sent and end.done_reason else end.done_reason or None
        out = [envelope("chat.completion.chunk", [{"index": 0, "delta": {}, "finish_reason": reason}])]
        if opened.include_usage:
            out.append(envelope("chat.completion.chunk", [], usage_of(end)))
        return out

    def whole(deltas: list[Delta], end: Final) -> Completion:
        joined = Delta.joined(deltas)
        calls = openai_tool_calls(joined.tool_calls) or None
        message = OutMessage(role="assistant", content=joined.content, reasoning=joined.thinking, tool_calls=calls)
        reason = "tool_calls" if calls else end.done_reason or None
        return envelope("chat.completion", [choice(joined.logprobs, index=0, message=message, finish_reason=reason)],
                        usage_of(end))

    return {"chunk": chunk, "final": final, "whole": whole}


def completion_shape(opened: Opened[CompletionRequest]) -> Shape:
    envelope, include_usage = opened.envelope, opened.include_usage

    def text_chunk(text: str, reason: str | None, logprobs: list[Any] | None, usage: Usage | None) -> Completion:
        return envelope("text_completion", [choice(logprobs, text=text, index=0, finish_reason=reason)], usage)

    def chunk(delta: Delta) -> Completion | None:
        if not delta.content and not delta.logprobs:
            return None  # thinking has no place in a text completion
        return text_chunk(delta.content, None, delta.logprobs, Usage() if include_usage else None)

    def final(end: Final) -> list[Completion]:
        out = [text_chunk("", end.done_reason or None, None, Usage() if include_usage else None)]
        if include_usage:
            out.append(envelope("text_completion", [], usage_of(end)))
        return out

    def whole(deltas: list[Delta], end: Final) -> Completion:
        joined = Delta.joined(deltas)
        return text_chunk(joined.content, end.done_reason or None, joined.logprobs, usage_of(end))

    return {"chunk": chunk, "final": final, "whole": whole}


def v1_handler(path: str, route: V1Route[Any, Any]) -> Any:
    """The Litestar handler that answers ``route`` at ``path``."""

    async def handler(request: Request[Any, Any, Any], state: State) -> Response[Any]:
        return await answer_v1(request, state, route)

    return post(path, status_code=200, name=route.kind)(handler)


chat_completions = v1_handler("/v1/chat/completions", V1Route(ChatCompletionRequest, chat_request, prepare_chat,
                                                              "chatcmpl", "chat.completion", chat_shape))
completions = v1_handler("/v1/completions", V1Route(CompletionRequest, generate_request, prepare_generate, "cmpl",
                                                    "text_completion", completion_shape))


def embedding_inputs(value: Any) -> list[str]:
    """``input``: a string (``""`` is one empty input) or a list of strings; token arrays are not supported."""
    if value is None:
        raise RequestError("invalid input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if not value:
            raise RequestError("invalid input")
        if all(isinstance(v, str) for v in value):
            return list(value)
    raise RequestError("invalid input type")


def _float32_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


@post("/v1/embeddings", status_code=200)
async def embeddings(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    body = await decode_body(request, EmbeddingsRequest)
    encoding = (body.encoding_format or "").lower()
    if encoding not in ("", "float", "base64"):
        raise RequestError(f"Invalid value for 'encoding_format' = {body.encoding_format}. "
                           "Supported values: ['float', 'base64'].")
    inputs = embedding_inputs(body.input)
    if not body.model.strip():
        raise RequestError(f"model '{body.model}' not found", 404)
    local = await lookup(state, body.model)
    result = await run_embed(request, state, local, inputs, options=None, keep_alive=None)
    vectors = embedding_vectors(result, body.dimensions or 0) if result is not None else []
    count = result.prompt_eval_count if result is not None else 0
    data = [EmbeddingItem(object="embedding", index=i,
                          embedding=_float32_base64(v) if encoding == "base64" else v)
            for i, v in enumerate(vectors)]
    return json_response(EmbeddingList(object="list", data=data, model=body.model,
                                       usage=EmbeddingUsage(prompt_tokens=count, total_tokens=count)))


# -- models ---------------------------------------------------------------------------------


def _list(store: Store) -> ModelList:
    stored = sorted(store.iter_models(), key=lambda m: m.mtime, reverse=True)
    data = [ModelEntry(id=m.name.display_shortest, object="model", created=int(m.mtime),
                       owned_by=m.name.namespace) for m in stored]
    return ModelList(object="list", data=data or None)


@get("/v1/models")
async def list_models(state: State) -> Response[bytes]:
    return json_response(await anyio.to_thread.run_sync(_list, state.store))


@get("/v1/models/{model:str}")
async def retrieve_model(model: str, state: State) -> Response[bytes]:
    def find() -> ModelEntry:
        local = find_model(state.store, model)
        return ModelEntry(id=model, object="model", created=int(local.stored.mtime), owned_by=local.name.namespace)

    return json_response(await anyio.to_thread.run_sync(find))


openai_router = Router(path="/", route_handlers=[chat_completions, completions, embeddings, list_models,
                                                 retrieve_model],
                       exception_handlers=OPENAI_HANDLERS)  # type: ignore[arg-type]

__all__ = ["openai_router"]
