"""Anthropic's Messages API (``POST /v1/messages``) over the /api/chat pipeline.

The request is translated into a native ``ChatRequest`` the way Ollama's
compat layer does it (system prompt first, tool results as ``tool``
messages, ``max_tokens`` -> ``num_predict``, ``thinking`` -> ``think``),
run through ``prepare_chat`` and relayed as one Messages object or as
Anthropic's server-sent events. Failures keep their native status inside
Anthropic's error envelope, so the ``anthropic`` client raises its usual
``NotFoundError``/``BadRequestError``.

Three things go beyond Ollama, following Anthropic's API: a stop sequence
that ended the output is reported as ``stop_reason: "stop_sequence"`` with
the sequence, a failure after the first event ends the stream with an
``error`` event, and ``POST /v1/messages/count_tokens`` counts the prompt the
same request would be rendered to.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request, Response, Router, post
from litestar.datastructures import State

from pyllama.ids import new_id
from pyllama.server.checks import check_images, decode_body, think_requested
from pyllama.server.errors import ANTHROPIC_HANDLERS, RequestError
from pyllama.server.pipeline import lookup, prepare_chat
from pyllama.server.relay import SSE, Delta, Final, Framing, respond
from pyllama.server.schemas_anthropic import (
    Block,
    BlockDelta,
    BlockStart,
    BlockStop,
    ContentBlock,
    ErrorBody,
    ImageSource,
    InputJSONDelta,
    MessageDelta,
    MessageParam,
    MessagesRequest,
    MessagesResponse,
    MessageStart,
    MessageStop,
    StopInfo,
    StreamError,
    StreamEvent,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    TokenCount,
    ToolUseBlock,
    Usage,
)
from pyllama.server.schemas_inference import ChatRequest, Message, ToolCall, ToolCallFunction, ToolParameters
from pyllama.store.capabilities import THINKING
from pyllama.templates.capabilities import stored_model_capabilities

_encoder = msgspec.json.Encoder()
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "max", "xhigh": "high"}


# -- request -> native chat --------------------------------------------------------


def _image(source: ImageSource | None) -> str:
    """A base64 image source's data (checked here, so the error reads as Ollama's)."""
    if source is None:
        raise RequestError("invalid image source")
    if source.type != "base64":
        raise RequestError(f"invalid image source type: {source.type}. Only base64 images are supported.")
    try:
        check_images([source.data])
    except RequestError as exc:
        raise RequestError(f"invalid base64 image data: {exc}") from None
    return source.data


def _tool_result(content: Any) -> tuple[str, list[str]]:
    """A tool_result's content: a string, or blocks whose text is joined and images kept."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        return "", []
    text, images = [], []
    for item in content:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "text" and isinstance(item.get("text"), str):
            text.append(item["text"])
        elif item.get("type") == "image":
            try:
                source = msgspec.convert(item.get("source"), ImageSource | None)
            except msgspec.ValidationError:
                raise RequestError("invalid tool_result image source") from None
            images.append(_image(source))
    return "".join(text), images


def convert_message(param: MessageParam) -> list[Message]:
    """One Anthropic message -> native messages: its text/images/tool calls/thinking as one
    message, tool results as ``tool`` messages (before a user's text, after anything else)."""
    role = param.role.lower()
    blocks = [ContentBlock(type="text", text=param.content)] if isinstance(param.content, str) else param.content or []
    text: list[str] = []
    images: list[str] = []
    calls: list[ToolCall] = []
    thinking = ""
    results: list[Message] = []
    for block in blocks:
        if block.type == "text":
            text.append(block.text or "")
        elif block.type == "image":
            images.append(_image(block.source))
        elif block.type == "tool_use":
            if not block.id:
                raise RequestError("tool_use block missing required 'id' field")
            if not block.name:
                raise RequestError("tool_use block missing required 'name' field")
            calls.append(ToolCall(id=block.id, function=ToolCallFunction(name=block.name,
                                                                         arguments=dict(block.input or {}))))
        elif block.type == "tool_result":
            content, result_images = _tool_result(block.content)
            results.append(Message(role="tool", content=content, images=result_images or None,
                                   tool_call_id=block.tool_use_id))
        elif block.type == "thinking":
            thinking = block.thinking or thinking
    out: list[Message] = results if role == "user" else []
    joined = "".join(text)
    if joined or images or calls or thinking:
        out.append(Message(role=role, content=joined, images=images or None, tool_calls=calls or None,
                           thinking=thinking))
    return out if role == "user" else out + results


def _system(system: str | list[ContentBlock] | None) -> list[Message]:
    text = system if isinstance(system, str) else "".join(b.text or "" for b in system or [] if b.type == "text")
    return [Message(role="system", content=text)] if text else []


def convert_tools(body: MessagesRequest) -> list[dict[str, Any]] | None:
    """Anthropic tools -> native function tools; a malformed ``input_schema`` is a 400."""
    tools = []
    for i, tool in enumerate(body.tools or []):
        function: dict[str, Any] = {"name": tool.name, "description": tool.description}
        if tool.input_schema is not None:
            try:
                msgspec.convert(tool.input_schema, ToolParameters)
            except msgspec.ValidationError as exc:
                where = str(exc).replace("`$", f"`$.tools[{i}].input_schema", 1)
                raise RequestError(f"invalid input_schema for tool {json.dumps(tool.name)}: {where}") from None
            function["parameters"] = tool.input_schema
        tools.append({"type": "function", "function": function})
    return tools or None


def _think(body: MessagesRequest) -> bool | str | None:
    if body.thinking is not None and body.thinking.type in ("enabled", "disabled"):
        return body.thinking.type == "enabled"
    if body.output_config is not None:
        return EFFORTS.get(body.output_config.effort.strip().lower())
    return None


def to_chat_request(body: MessagesRequest) -> ChatRequest:
    """Ollama's checks (model, max_tokens, messages, in that order) and translation."""
    if not body.model:
        raise RequestError("model is required")
    if body.max_tokens <= 0:
        raise RequestError("max_tokens is required and must be positive")
    if not body.messages:
        raise RequestError("messages is required")
    messages = _system(body.system)
    for param in body.messages:
        messages.extend(convert_message(param))
    if all(m.role == "system" for m in messages):
        # Nothing to answer (every message empty); natively this would only load the model.
        raise RequestError("messages: all messages have empty content")
    options: dict[str, Any] = {"num_predict": body.max_tokens}
    for key in ("temperature", "top_p", "top_k"):
        if getattr(body, key) is not None:
            options[key] = getattr(body, key)
    if body.stop_sequences:
        options["stop"] = list(body.stop_sequences)
    return ChatRequest(model=body.model, messages=messages, tools=convert_tools(body), options=options,
                       think=_think(body), stream=body.stream)


def estimate_input_tokens(body: MessagesRequest) -> int:
    """``message_start`` goes out before the prompt is counted: a chars/4 estimate, as Ollama gives."""
    size = len(_encoder.encode([body.system, body.messages, body.tools]))
    return max(size // 4, 1)


async def relax_thinking(state: State, chat: ChatRequest) -> None:
    """Ollama drops ``thinking`` for a model that cannot think rather than failing (Claude Code asks)."""
    if not think_requested(chat.think):
        return
    local = await lookup(state, chat.model)
    caps = await anyio.to_thread.run_sync(stored_model_capabilities, local)
    if THINKING not in caps:
        chat.think = None


# -- output ----------------------------------------------------------------------


def client_stop(end: Final, sequences: list[str] | None) -> str | None:
    """The client's stop sequence that ended the output (not a template's own stop), if one did."""
    return end.stop_sequence if end.stop_sequence and end.stop_sequence in (sequences or ()) else None


def stop_reason(done_reason: str, tool_use: bool, sequence: str | None) -> str | None:
    """Ollama's mapping, plus Anthropic's ``stop_sequence`` when one of the client's stops hit."""
    if tool_use:
        return "tool_use"
    if done_reason == "length":
        return "max_tokens"
    if done_reason == "stop":
        return "stop_sequence" if sequence else "end_turn"
    return "stop_sequence" if done_reason else None


def whole_message(msg_id: str, model: str, deltas: list[Delta], end: Final,
                  sequences: list[str] | None) -> MessagesResponse:
    """A non-streaming answer: thinking, then text, then tool_use blocks (Ollama's order)."""
    content: list[Block] = []
    thinking = "".join(d.thinking for d in deltas)
    text = "".join(d.content for d in deltas)
    if thinking:
        content.append(ThinkingBlock(thinking))
    if text:
        content.append(TextBlock(text))
    calls = [c for d in deltas for c in d.tool_calls]
    content += [ToolUseBlock(c.id, c.function.name, c.function.arguments) for c in calls if c.function]
    sequence = client_stop(end, sequences) if not calls else None
    return MessagesResponse(id=msg_id, model=model, content=content,
                            stop_reason=stop_reason(end.done_reason, bool(calls), sequence),
                            stop_sequence=sequence, usage=Usage(end.prompt_eval_count, end.eval_count))


class EventStream:
    """Parsed deltas -> Anthropic's events: one open block at a time, a new block whenever the
    kind changes (thinking -> text -> tool_use), each tool call a whole block."""

    def __init__(self, msg_id: str, model: str, input_estimate: int, sequences: list[str] | None) -> None:
        self.msg_id, self.model, self.input_estimate, self.sequences = msg_id, model, input_estimate, sequences
        self.started = False
        self.open: str | None = None
        self.index = 0
        self.tool_use = False

    def _begin(self) -> list[StreamEvent]:
        if self.started:
            return []
        self.started = True
        message = MessagesResponse(id=self.msg_id, model=self.model, content=[],
                                   usage=Usage(self.input_estimate, 0))
        return [MessageStart(message)]

    def _close(self) -> list[StreamEvent]:
        if self.open is None:
            return []
        self.open = None
        self.index += 1
        return [BlockStop(self.index - 1)]

    def _switch(self, kind: str) -> list[StreamEvent]:
        if self.open == kind:
            return []
        out = self._close()
        self.open = kind
        out.append(BlockStart(self.index, ThinkingBlock("") if kind == "thinking" else TextBlock("")))
        return out

    def chunk(self, delta: Delta) -> list[StreamEvent]:
        out = self._begin()
        if delta.thinking:
            out += self._switch("thinking")
            out.append(BlockDelta(self.index, ThinkingDelta(delta.thinking)))
        if delta.content:
            out += self._switch("text")
            out.append(BlockDelta(self.index, TextDelta(delta.content)))
        for call in delta.tool_calls:
            if call.function is None:
                continue
            out += self._close()
            self.tool_use = True
            arguments = _encoder.encode(call.function.arguments).decode()
            out += [BlockStart(self.index, ToolUseBlock(call.id, call.function.name, {})),
                    BlockDelta(self.index, InputJSONDelta(arguments)), BlockStop(self.index)]
            self.index += 1
        return out

    def final(self, end: Final) -> list[StreamEvent]:
        sequence = client_stop(end, self.sequences) if not self.tool_use else None
        reason = stop_reason(end.done_reason, self.tool_use, sequence)
        return [*self._begin(), *self._close(),
                MessageDelta(StopInfo(reason, sequence), Usage(end.prompt_eval_count, end.eval_count)),
                MessageStop()]


def sse_frame(event: StreamEvent) -> bytes:
    """``event: <type>`` then the object as ``data``, as Anthropic (and Ollama) write them."""
    name = event.__struct_config__.tag
    return b"event: " + str(name).encode() + b"\ndata: " + _encoder.encode(event) + b"\n\n"


SSE_FRAMING = Framing(SSE, sse_frame, lambda message: StreamError(ErrorBody("api_error", message)))


@post("/v1/messages", status_code=200)
async def messages(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    started = time.perf_counter_ns()
    body = await decode_body(request, MessagesRequest)
    chat = to_chat_request(body)
    await relax_thinking(state, chat)
    prepared = await prepare_chat(request, state, chat, started)
    if prepared.items is None:
        raise RequestError("the request produced no output", 500)
    msg_id = new_id("msg", "hex", 24)
    events = EventStream(msg_id, body.model, estimate_input_tokens(body), body.stop_sequences)
    response = await respond(request, prepared.items, stream=body.stream, chunk=events.chunk, final=events.final,
                             whole=lambda deltas, end: whole_message(msg_id, body.model, deltas, end, body.stop_sequences),
                             framing=SSE_FRAMING)
    if body.stream:
        response.headers["Cache-Control"] = "no-cache"
    return response


@post("/v1/messages/count_tokens", status_code=200)
async def count_tokens(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    """The prompt's size in the model's tokens: the request rendered exactly as /v1/messages
    would render it (template, system prompt, tools, thinking), then tokenized. Nothing runs."""
    started = time.perf_counter_ns()
    body = await decode_body(request, MessagesRequest)
    if body.max_tokens <= 0:
        body.max_tokens = 1  # not part of a count request; the translation wants one
    chat = to_chat_request(body)
    chat.debug_render_only = True
    await relax_thinking(state, chat)
    prepared = await prepare_chat(request, state, chat, started)
    debug, view = prepared.debug, prepared.view
    if debug is None or view is None:
        raise RequestError("the request produced no prompt", 500)
    count = await anyio.to_thread.run_sync(view.count_tokens, debug.rendered_template)
    return Response(_encoder.encode(TokenCount(input_tokens=count)), media_type="application/json")


anthropic_router = Router(path="/", route_handlers=[messages, count_tokens],
                          exception_handlers=ANTHROPIC_HANDLERS)  # type: ignore[arg-type]

__all__ = ["anthropic_router"]
