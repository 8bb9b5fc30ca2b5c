"""OpenAI's Responses API (``POST /v1/responses``), stateless, as Ollama serves it.

The request becomes a native /api/chat request (``prepare_chat`` runs the
same checks, model lookup, rendering and scheduling); the parsed output is
written back as Responses output items: ``reasoning`` for thinking,
``function_call`` for tool calls, else one assistant ``message``. Streaming
answers are server-sent events named by their ``type``, numbered from 0,
in Ollama's order. Nothing is stored, so ``previous_response_id``,
``conversation`` and ``background`` are 400s: clients resend the history in
``input``. Errors use OpenAI's envelope.
"""

from __future__ import annotations

import json
import time
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, Router, post
from litestar.datastructures import State

from pyllama.ids import new_id
from pyllama.server.checks import decode_body, decode_image_url, think_from_effort
from pyllama.server.errors import OPENAI_HANDLERS, RequestError
from pyllama.server.pipeline import prepare_chat, relayed_items
from pyllama.server.relay import SSE, Delta, Final, Framing, respond
from pyllama.server.schemas_inference import ChatRequest, Message, ResponseToolCall, ToolCall, ToolCallFunction
from pyllama.server.schemas_responses import (
    ArgumentsDeltaEvent,
    ArgumentsDoneEvent,
    ContentPartEvent,
    Event,
    FunctionCallInput,
    FunctionCallItem,
    FunctionCallOutputInput,
    FunctionTool,
    IncompleteDetails,
    InputImage,
    InputMessage,
    InputText,
    MessageItem,
    OutputItem,
    OutputItemEvent,
    OutputText,
    ReasoningEcho,
    ReasoningInput,
    ReasoningItem,
    ResponseError,
    ResponseEvent,
    ResponseObject,
    ResponsesRequest,
    SummaryDeltaEvent,
    SummaryDoneEvent,
    SummaryText,
    TextDeltaEvent,
    TextDoneEvent,
    TextEcho,
    TextFormatEcho,
    Usage,
)

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


def _rand_id(prefix: str) -> str:
    return new_id(prefix, "number", 999999)


# -- request translation ---------------------------------------------------------------------


def _convert(value: Any, type_: type[T], where: str) -> T:
    """One input item or part as its Struct; a wrong field type is a 400 naming the path."""
    if not isinstance(value, dict):
        raise RequestError(f"{where}: expected an object")
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as exc:
        raise RequestError(str(exc).replace("`$", f"`$.{where}", 1)) from None


def _content(value: Any, where: str, field: str) -> tuple[str, list[str]]:
    """A string, or content parts -> one text (parts concatenated, as Ollama does) and base64 images."""
    if value is None or isinstance(value, str):
        return value or "", []
    if not isinstance(value, list):
        raise RequestError(f"{where}: {field} must be a string or array")
    text, images = "", list[str]()
    for j, raw in enumerate(value):
        at = f"{where}.{field}[{j}]"
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind in ("input_text", "output_text"):
            text += _convert(raw, InputText, at).text
        elif kind == "input_image":
            image = _convert(raw, InputImage, at)
            if not image.image_url:  # a file_id names an upload this server never has
                raise RequestError(f"{at}: input_image needs an image_url (a base64 data URL); "
                                   "file_id is not supported")
            images.append(decode_image_url(image.image_url))
        elif kind == "input_file":
            raise RequestError("file inputs are not currently supported")
        else:
            raise RequestError(f"{where}: {field}[{j}]: unknown content type: {kind or ''}")
    return text, images


def _message(raw: dict[str, Any], where: str) -> Message:
    item = _convert(raw, InputMessage, where)
    text, images = _content(item.content, where, "content")
    # OpenAI's "developer" role is the system prompt; the native routes know no such role.
    role = "system" if item.role == "developer" else item.role
    return Message(role=role, content=text, images=images or None)


def _arguments(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        args = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(f"failed to parse function call arguments: {exc}") from None
    if not isinstance(args, dict):
        raise RequestError("failed to parse function call arguments: not a JSON object")
    return args


def input_messages(value: Any) -> list[Message]:
    """``input`` -> native messages, as Ollama converts it: reasoning attaches to the next assistant turn,
    function calls join (or open) an assistant turn, function outputs become tool messages."""
    if value is None:
        return []
    if isinstance(value, str):
        return [Message(role="user", content=value)] if value else []
    if not isinstance(value, list):
        raise RequestError("input must be a string or array")
    messages: list[Message] = []
    names: dict[str, str] = {}  # call_id -> function name, for tool messages' tool_name
    thinking = ""
    for i, raw in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(raw, dict):
            raise RequestError(f"{where}: expected an object")
        kind = raw.get("type") or ("message" if raw.get("role") else "")
        if kind == "message":
            message = _message(raw, where)
            if message.role == "assistant" and thinking:
                message.thinking, thinking = thinking, ""
            messages.append(message)
        elif kind == "function_call":
            fc = _convert(raw, FunctionCallInput, where)
            call = ToolCall(id=fc.call_id, function=ToolCallFunction(name=fc.name, arguments=_arguments(fc.arguments)))
            names[fc.call_id] = fc.name
            last = messages[-1] if messages and messages[-1].role == "assistant" else None
            if last is None:
                last = Message(role="assistant")
                messages.append(last)
            last.tool_calls = [*(last.tool_calls or []), call]
            if thinking:
                last.thinking, thinking = thinking, ""
        elif kind == "function_call_output":
            out = _convert(raw, FunctionCallOutputInput, where)
            text, images = _content(out.output, where, "output")
            messages.append(Message(role="tool", content=text, images=images or None, tool_call_id=out.call_id,
                                    tool_name=names.get(out.call_id, "")))
        elif kind == "reasoning":
            item = _convert(raw, ReasoningInput, where)
            thinking = item.encrypted_content or "".join(s.text for s in item.summary or [])
        elif not kind:
            raise RequestError(f"{where}: input item missing required 'type' field")
        else:
            raise RequestError(f"{where}: unknown input item type: {json.dumps(kind)}")
    if thinking:  # trailing reasoning with nothing after it
        messages.append(Message(role="assistant", thinking=thinking))
    return messages


def _think(body: ResponsesRequest) -> bool | str | None:
    return think_from_effort(body.reasoning.effort if body.reasoning is not None else None)


def _native_tools(tools: list[FunctionTool] | None) -> list[dict[str, Any]] | None:
    """Responses' flat function tools -> native ``{"type": "function", "function": {...}}``."""
    if not tools:
        return None
    out = []
    for i, tool in enumerate(tools):
        if tool.type != "function":
            raise RequestError(f"tools[{i}]: tool type {json.dumps(tool.type)} is not supported "
                               "(only function tools are)")
        fn: dict[str, Any] = {"name": tool.name, "description": tool.description or ""}
        if tool.parameters is not None:
            fn["parameters"] = tool.parameters
        out.append({"type": "function", "function": fn})
    return out


def _format(body: ResponsesRequest) -> Any:
    fmt = body.text.format if body.text is not None else None
    if fmt is None:
        return None
    if fmt.type == "json_schema":
        return fmt.schema
    if fmt.type == "json_object":
        return "json"
    return None


def chat_request(body: ResponsesRequest) -> ChatRequest:
    """The native /api/chat request for a Responses request (400s for what a stateless server cannot do)."""
    if body.previous_response_id:
        raise RequestError("previous_response_id is not supported; resend the conversation in input")
    if body.background or body.conversation is not None:
        raise RequestError("background and conversation are not supported; resend the conversation in input")
    messages = input_messages(body.input)
    if body.instructions:
        messages.insert(0, Message(role="system", content=body.instructions))
    options: dict[str, Any] = {
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "top_p": 1.0 if body.top_p is None else body.top_p,
    }
    if body.max_output_tokens is not None:
        options["num_predict"] = body.max_output_tokens
    if body.lora is not None:
        options["lora"] = body.lora
    return ChatRequest(model=body.model, messages=messages, options=options, tools=_native_tools(body.tools),
                       format=_format(body), think=_think(body), stream=bool(body.stream))


# -- response translation --------------------------------------------------------------------


def _arguments_text(call: ResponseToolCall) -> tuple[str, str, str]:
    """(call_id, name, arguments as a compact JSON string) of a native tool call."""
    fn = call.function
    if fn is None:
        return call.id, "", "{}"
    return call.id, fn.name, _encoder.encode(fn.arguments).decode()


def _usage(end: Final) -> Usage:
    return Usage(input_tokens=end.prompt_eval_count, output_tokens=end.eval_count,
                 total_tokens=end.prompt_eval_count + end.eval_count)


def _message_item(item_id: str, text: str) -> MessageItem:
    return MessageItem(id=item_id, status="completed", content=[OutputText(text=text)])


def _reasoning_item(item_id: str, text: str) -> ReasoningItem:
    return ReasoningItem(id=item_id, summary=[SummaryText(text=text)], encrypted_content=text)


class ResponseWriter:
    """Turns one request's parsed output into a Responses object, or its stream of events."""

    def __init__(self, body: ResponsesRequest) -> None:
        self.body = body
        self.response_id = _rand_id("resp")
        self.item_id = _rand_id("msg")
        self.created_at = int(time.time())
        # streaming state
        self.sequence = 0
        self.started = False
        self.output_index = 0
        self.items: list[OutputItem] = []
        self.thinking = ""
        self.reasoning_id = ""
        self.text = ""
        self.text_open = False
        self.tool_calls_sent = False

    def response(self, status: str, output: list[OutputItem], end: Final | None = None,
                 error: str = "") -> ResponseObject:
        body = self.body
        given = body.text.format if body.text is not None else None
        fmt = (TextFormatEcho(type=given.type, name=given.name, schema=given.schema, strict=given.strict)
               if given is not None else TextFormatEcho(type="text"))
        reasoning = None
        if body.reasoning is not None and (body.reasoning.effort or body.reasoning.summary):
            reasoning = ReasoningEcho(effort=body.reasoning.effort or None, summary=body.reasoning.summary or None)
        incomplete = end is not None and end.done_reason == "length"
        return ResponseObject(
            id=self.response_id, created_at=self.created_at,
            completed_at=int(time.time()) if end is not None else None,
            status="incomplete" if incomplete else status,
            incomplete_details=IncompleteDetails(reason="max_output_tokens") if incomplete else None,
            model=body.model, instructions=body.instructions or None, output=output,
            error=ResponseError(code="server_error", message=error) if error else None,
            tools=body.tools or [], truncation=body.truncation or "disabled", text=TextEcho(format=fmt),
            top_p=1.0 if body.top_p is None else body.top_p,
            temperature=1.0 if body.temperature is None else body.temperature,
            reasoning=reasoning, usage=_usage(end) if end is not None else None,
            max_output_tokens=body.max_output_tokens, background=bool(body.background))

    # -- non-streaming ------------------------------------------------------------------------

    def whole(self, deltas: list[Delta], end: Final) -> ResponseObject:
        """Ollama's shape: reasoning first, then the function calls if any were made, else the message."""
        thinking = "".join(d.thinking for d in deltas)
        calls = [c for d in deltas for c in d.tool_calls]
        output: list[OutputItem] = []
        if thinking:
            output.append(_reasoning_item(f"rs_{self.response_id}", thinking))
        for i, call in enumerate(calls):
            call_id, name, arguments = _arguments_text(call)
            output.append(FunctionCallItem(id=f"fc_{self.response_id}_{i}", status="completed", call_id=call_id,
                                           name=name, arguments=arguments))
        if not calls:
            output.append(_message_item(self.item_id, "".join(d.content for d in deltas)))
        return self.response("completed", output, end)

    # -- streaming ------------------------------------------------------------------------------

    def _event(self, cls: type[Event], kind: str, **fields: Any) -> Event:
        event = cls(type=kind, sequence_number=self.sequence, **fields)
        self.sequence += 1
        return event

    def _start(self) -> list[Event]:
        if self.started:
            return []
        self.started = True
        return [self._event(ResponseEvent, "response.created", response=self.response("in_progress", [])),
                self._event(ResponseEvent, "response.in_progress", response=self.response("in_progress", []))]

    def _close_reasoning(self) -> list[Event]:
        if not self.reasoning_id:
            return []
        done = self._event(SummaryDoneEvent, "response.reasoning_summary_text.done", item_id=self.reasoning_id,
                           output_index=self.output_index, summary_index=0, text=self.thinking)
        events = self._finish(_reasoning_item(self.reasoning_id, self.thinking), [done])
        self.reasoning_id = ""
        return events

    def _finish(self, item: OutputItem, events: list[Event]) -> list[Event]:
        """Close the current output item: its own done events, then ``output_item.done``."""
        events.append(self._event(OutputItemEvent, "response.output_item.done", output_index=self.output_index,
                                  item=item))
        self.items.append(item)
        self.output_index += 1
        return events

    def _close_text(self) -> list[Event]:
        if not self.text_open:
            return []
        events = [self._event(TextDoneEvent, "response.output_text.done", item_id=self.item_id,
                              output_index=self.output_index, content_index=0, text=self.text),
                  self._event(ContentPartEvent, "response.content_part.done", item_id=self.item_id,
                              output_index=self.output_index, content_index=0, part=OutputText(text=self.text))]
        self.text_open = False
        return self._finish(_message_item(self.item_id, self.text), events)

    def _thinking(self, text: str) -> list[Event]:
        events: list[Event] = []
        if not self.reasoning_id:
            self.reasoning_id = _rand_id("rs")
            events.append(self._event(OutputItemEvent, "response.output_item.added", output_index=self.output_index,
                                      item=ReasoningItem(id=self.reasoning_id)))
        self.thinking += text
        events.append(self._event(SummaryDeltaEvent, "response.reasoning_summary_text.delta",
                                  item_id=self.reasoning_id, output_index=self.output_index, summary_index=0,
                                  delta=text))
        return events

    def _tool_calls(self, calls: list[ResponseToolCall]) -> list[Event]:
        events = [*self._close_reasoning(), *self._close_text()]
        for i, call in enumerate(calls):
            call_id, name, arguments = _arguments_text(call)
            item_id = f"{_rand_id('fc')}_{i}"
            index = self.output_index
            events.append(self._event(OutputItemEvent, "response.output_item.added", output_index=index,
                                      item=FunctionCallItem(id=item_id, status="in_progress", call_id=call_id,
                                                            name=name, arguments="")))
            if arguments:
                events.append(self._event(ArgumentsDeltaEvent, "response.function_call_arguments.delta",
                                          item_id=item_id, output_index=index, delta=arguments))
            events.append(self._event(ArgumentsDoneEvent, "response.function_call_arguments.done", item_id=item_id,
                                      output_index=index, arguments=arguments))
            self._finish(FunctionCallItem(id=item_id, status="completed", call_id=call_id, name=name,
                                          arguments=arguments), events)
        self.tool_calls_sent = True
        return events

    def _content(self, text: str) -> list[Event]:
        events = self._close_reasoning()
        if not self.text_open:
            self.text_open = True
            events.append(self._event(OutputItemEvent, "response.output_item.added", output_index=self.output_index,
                                      item=MessageItem(id=self.item_id, status="in_progress", content=[])))
            events.append(self._event(ContentPartEvent, "response.content_part.added", item_id=self.item_id,
                                      output_index=self.output_index, content_index=0, part=OutputText(text="")))
        self.text += text
        events.append(self._event(TextDeltaEvent, "response.output_text.delta", item_id=self.item_id,
                                  output_index=self.output_index, content_index=0, delta=text))
        return events

    def chunk(self, delta: Delta) -> list[Event]:
        """Events for one parsed delta; text after tool calls is dropped, as Ollama does."""
        events = self._start()
        if delta.thinking:
            events += self._thinking(delta.thinking)
        if delta.tool_calls:
            events += self._tool_calls(delta.tool_calls)
        elif delta.content and not self.tool_calls_sent:
            events += self._content(delta.content)
        return events

    def final(self, end: Final) -> list[Event]:
        events = [*self._start(), *self._close_reasoning(), *self._close_text()]
        response = self.response("completed", list(self.items), end)
        return [*events, self._event(ResponseEvent, f"response.{response.status}", response=response)]

    def failed(self, message: str) -> Event:
        """The last event of a stream that failed after its first byte."""
        return self._event(ResponseEvent, "response.failed",
                           response=self.response("failed", list(self.items), error=message))


def _frame(event: Event) -> bytes:
    return b"event: " + event.type.encode() + b"\ndata: " + _encoder.encode(event) + b"\n\n"


@post("/v1/responses", status_code=200)
async def create_response(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    started = time.perf_counter_ns()
    body = await decode_body(request, ResponsesRequest)
    prepared = await prepare_chat(request, state, chat_request(body), started)
    writer = ResponseWriter(body)
    return await respond(request, await relayed_items(prepared), stream=bool(body.stream), chunk=writer.chunk,
                         final=writer.final, whole=writer.whole, framing=Framing(SSE, _frame, writer.failed))


responses_router = Router(path="/", route_handlers=[create_response],
                          exception_handlers=OPENAI_HANDLERS)  # type: ignore[arg-type]

__all__ = ["responses_router", "chat_request", "input_messages", "ResponseWriter"]
