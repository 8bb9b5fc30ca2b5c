"""/v1/messages (Anthropic's Messages API) through a real server: the official ``anthropic``
client and raw HTTP for the wire (SSE framing and order, shapes, error envelopes), text,
system prompts, stop sequences, max_tokens, thinking, tool use and tool results in history.

SmolLM2 seldom calls tools on its own; the tool tests give it a conversation in which it
already called the tool once (a few-shot history), so at temperature 0 it calls it again
and the server's tool-call parser turns that output into a ``tool_use`` block.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import msgspec
import ollama
import pytest

from inferenceutil import client  # noqa: F401 - a fixture
from inferenceutil import MODEL, PLAN_TEMPLATE, TOOLS_TEMPLATE, inference_server, post
from pyllama.server.anthropic import EventStream, convert_message, sse_frame, to_chat_request
from pyllama.server.relay import Delta, Final
from pyllama.server.schemas_anthropic import ContentBlock, MessageParam, MessagesRequest
from pyllama.server.schemas_inference import ResponseToolCall, ResponseToolCallFunction

HELLO = [{"role": "user", "content": "Name three colours."}]
COLD = {"temperature": 0}  # the SDK no longer takes temperature; it still goes on the wire
MSG_ID = re.compile(r"^msg_[0-9a-f]{24}$")
REQ_ID = re.compile(r"^req_[0-9a-f]{24}$")
WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}
# The model already asked for the weather once and got an answer; asked again, it repeats the call.
FEW_SHOT = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                       "input": {"city": "Paris"}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                                 {"type": "text", "text": "Weather in Paris?"}]},
]


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path) -> Iterator[str]:
    with inference_server(module_models_dir, model_path, parallel=2) as url:
        yield url


@pytest.fixture(scope="module")
def sdk(base: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def tools_model(base: str, client: ollama.Client, model_path: Path) -> str:
    client.create("smol-tools", files={"model.gguf": client.create_blob(model_path)}, template=TOOLS_TEMPLATE)
    return "smol-tools"


def body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 8, "messages": HELLO, **COLD, **extra}


def sse(base: str, payload: dict[str, Any]) -> tuple[httpx.Response, list[dict[str, Any]]]:
    """POST with ``stream: true``; every frame must be ``event: <type>`` + one JSON ``data`` line."""
    with httpx.stream("POST", base + "/v1/messages", json={**payload, "stream": True}, timeout=120) as resp:
        raw = resp.read().decode()
    assert raw.endswith("\n\n")
    events = []
    for frame in raw[:-2].split("\n\n"):
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line[len("data: "):])
        assert data["type"] == event_line[len("event: "):]
        events.append(data)
    return resp, events


def block_text(events: list[dict[str, Any]], kind: str) -> str:
    key = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}[kind]
    return "".join(e["delta"][key] for e in events if e["type"] == "content_block_delta" and e["delta"]["type"] == kind)


# -- text ----------------------------------------------------------------------------


def test_message_shape_and_sdk(base: str, sdk: anthropic.Anthropic) -> None:
    resp = post(base, "/v1/messages", body())
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    out = resp.json()
    assert list(out) == ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"]
    assert MSG_ID.match(out["id"]) and out["type"] == "message" and out["role"] == "assistant"
    assert out["model"] == MODEL and out["stop_reason"] == "max_tokens" and out["stop_sequence"] is None
    assert out["content"] == [{"type": "text", "text": out["content"][0]["text"]}] and out["content"][0]["text"]
    assert out["usage"]["output_tokens"] == 8 and out["usage"]["input_tokens"] > 0

    message = sdk.messages.create(model=MODEL, max_tokens=8, messages=HELLO, extra_body=COLD)  # type: ignore[arg-type]
    assert message.content[0].type == "text" and message.content[0].text == out["content"][0]["text"]
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 8


def test_stream_events_in_order(base: str, sdk: anthropic.Anthropic) -> None:
    whole = post(base, "/v1/messages", body()).json()
    resp, events = sse(base, body())
    assert resp.headers["content-type"].startswith("text/event-stream")
    types = [e["type"] for e in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(types[2:-3]) == {"content_block_delta"}
    start = events[0]["message"]
    assert MSG_ID.match(start["id"]) and start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["output_tokens"] == 0 and start["usage"]["input_tokens"] > 0
    assert events[1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert all(e["index"] == 0 for e in events[1:-2])
    assert block_text(events, "text_delta") == whole["content"][0]["text"]
    assert events[-2]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert events[-2]["usage"]["output_tokens"] == 8

    with sdk.messages.stream(model=MODEL, max_tokens=8, messages=HELLO, extra_body=COLD) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole["content"][0]["text"] and final.stop_reason == "max_tokens"


def test_system_prompt_string_or_blocks(base: str) -> None:
    system = "You only ever answer with the word 'banana'."
    as_string = post(base, "/v1/messages", body(system=system, max_tokens=6)).json()
    as_blocks = post(base, "/v1/messages", body(system=[{"type": "text", "text": system}], max_tokens=6)).json()
    plain = post(base, "/v1/messages", body(max_tokens=6)).json()
    assert as_string["content"] == as_blocks["content"] != plain["content"]


def test_stop_sequences(base: str, sdk: anthropic.Anthropic) -> None:
    text = post(base, "/v1/messages", body(max_tokens=12)).json()["content"][0]["text"]
    word = text.split()[2]  # a stop the model reaches within a few tokens
    out = post(base, "/v1/messages", body(max_tokens=12, stop_sequences=["never-seen", word])).json()
    assert out["stop_reason"] == "stop_sequence" and out["stop_sequence"] == word
    assert out["content"][0]["text"] == text[:text.index(word)]
    _, events = sse(base, body(max_tokens=12, stop_sequences=[word]))
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": word}
    message = sdk.messages.create(model=MODEL, max_tokens=12, messages=HELLO, stop_sequences=[word],  # type: ignore[arg-type]
                                  extra_body=COLD)
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == word
    # Not every "stop" is a stop sequence: the end of a turn is end_turn.
    ended = post(base, "/v1/messages", body(max_tokens=60, messages=[{"role": "user", "content": "Say hi."}])).json()
    assert ended["stop_reason"] == "end_turn" and ended["stop_sequence"] is None


# -- tools and thinking ----------------------------------------------------------------


def test_tool_use_and_tool_result_round_trip(base: str, sdk: anthropic.Anthropic, tools_model: str) -> None:
    request = {"model": tools_model, "max_tokens": 30, "messages": FEW_SHOT, "tools": [WEATHER], **COLD,
               "tool_choice": {"type": "auto"}, "metadata": {"user_id": "u1"}}
    out = post(base, "/v1/messages", request).json()
    assert out["stop_reason"] == "tool_use"
    (call,) = out["content"]
    assert list(call) == ["type", "id", "name", "input"] and call["id"]
    assert call["type"] == "tool_use" and call["name"] == "get_weather" and call["input"] == {"city": "Paris"}

    _, events = sse(base, request)
    assert [e["type"] for e in events] == ["message_start", "content_block_start", "content_block_delta",
                                           "content_block_stop", "message_delta", "message_stop"]
    assert events[1]["content_block"] == {"type": "tool_use", "id": events[1]["content_block"]["id"],
                                          "name": "get_weather", "input": {}}
    assert json.loads(block_text(events, "input_json_delta")) == {"city": "Paris"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"

    with sdk.messages.stream(model=tools_model, max_tokens=30, messages=FEW_SHOT, tools=[WEATHER],  # type: ignore[arg-type, list-item]
                             extra_body=COLD) as stream:
        final = stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use" and block.input == {"city": "Paris"}

    # The call goes back into the history with its result; the model answers in text.
    history = [*FEW_SHOT, {"role": "assistant", "content": [call]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"],
                                             "content": [{"type": "text", "text": "21C and sunny"}]},
                                            {"type": "text", "text": "Thanks! Summarise it."}]}]
    answer = post(base, "/v1/messages", {**request, "messages": history, "max_tokens": 8})
    assert answer.status_code == 200, answer.text
    assert answer.json()["stop_reason"] in ("tool_use", "max_tokens", "end_turn")


def test_thinking_then_text_blocks(base: str, client: ollama.Client, model_path: Path) -> None:
    client.create("smol-plan", files={"model.gguf": client.create_blob(model_path)}, template=PLAN_TEMPLATE)
    request = {"model": "smol-plan", "max_tokens": 12, "messages": [{"role": "user", "content": "Pick a colour."}],
               "thinking": {"type": "enabled", "budget_tokens": 1024}, **COLD}
    out = post(base, "/v1/messages", request).json()
    assert [b["type"] for b in out["content"]] == ["thinking", "text"]
    _, events = sse(base, request)
    starts = [(e["index"], e["content_block"]["type"]) for e in events if e["type"] == "content_block_start"]
    stops = [e["index"] for e in events if e["type"] == "content_block_stop"]
    assert starts == [(0, "thinking"), (1, "text")] and stops == [0, 1]
    assert block_text(events, "thinking_delta") == out["content"][0]["thinking"]
    assert block_text(events, "text_delta") == out["content"][1]["text"]

    off = post(base, "/v1/messages", {**request, "thinking": {"type": "disabled"}}).json()
    assert [b["type"] for b in off["content"]] == ["text"]
    # A model that cannot think answers anyway (Ollama relaxes thinking for Anthropic clients).
    relaxed = post(base, "/v1/messages", body(thinking={"type": "enabled", "budget_tokens": 1024}))
    assert relaxed.status_code == 200 and relaxed.json()["content"][0]["type"] == "text"


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "status", "kind", "message"), [
    (body(model="nope"), 404, "not_found_error", "model 'nope' not found"),
    (b'{"model" 1}', 400, "invalid_request_error", "JSON is malformed"),
    (b"", 400, "invalid_request_error", "missing request body"),
    (body(messages=[]), 400, "invalid_request_error", "messages is required"),
    (body(messages=[{"role": "user", "content": ""}]), 400, "invalid_request_error", "all messages have empty content"),
    (body(messages=[{"role": "user", "content": []}]), 400, "invalid_request_error", "all messages have empty content"),
    (body(model=""), 400, "invalid_request_error", "model is required"),
    (body(max_tokens=0), 400, "invalid_request_error", "max_tokens is required and must be positive"),
    (body(max_tokens="8"), 400, "invalid_request_error", "`$.max_tokens`"),
    (body(messages="hi"), 400, "invalid_request_error", "`$.messages`"),
    (body(system=3), 400, "invalid_request_error", "`$.system`"),
    (body(stop_sequences="x"), 400, "invalid_request_error", "`$.stop_sequences`"),
    (body(tools=[{"name": "f", "input_schema": {"properties": []}}]), 400, "invalid_request_error",
     'invalid input_schema for tool "f": Expected `object | null`, got `array` - at `$.tools[0].input_schema.properties`'),
    (body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "x"}}]}]), 400,
     "invalid_request_error", "invalid image source type: url. Only base64 images are supported."),
    (body(messages=[{"role": "assistant", "content": [{"type": "tool_use", "name": "f"}]}]), 400,
     "invalid_request_error", "tool_use block missing required 'id' field"),
])
def test_error_envelope(base: str, payload: Any, status: int, kind: str, message: str) -> None:
    resp = post(base, "/v1/messages", payload)
    assert resp.status_code == status and resp.headers["content-type"].startswith("application/json")
    out = resp.json()
    assert list(out) == ["type", "error", "request_id"] and out["type"] == "error"
    assert out["error"]["type"] == kind and message in out["error"]["message"]
    assert REQ_ID.match(out["request_id"])


def test_sdk_raises_its_errors(sdk: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError, match="model 'nope' not found"):
        sdk.messages.create(model="nope", max_tokens=4, messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError, match="messages is required"):
        sdk.messages.create(model=MODEL, max_tokens=4, messages=[])


def test_count_tokens_is_what_the_model_is_prompted_with(base: str, sdk: anthropic.Anthropic, client: ollama.Client,
                                                        tools_model: str) -> None:
    # usage.input_tokens leaves out cached tokens, and every chat prompt of this template starts
    # alike: a runner of its own (another num_batch) has nothing cached, so it evaluates all of it.
    client.create("smol-count", from_=MODEL, parameters={"num_batch": 128})
    messages = [{"role": "user", "content": "Count the tokens of this unusual sentence about walruses, please."}]
    system = "You are terse."
    counted = sdk.messages.count_tokens(model="smol-count", messages=messages, system=system)  # type: ignore[arg-type]
    ran = post(base, "/v1/messages", body(model="smol-count", messages=messages, system=system, max_tokens=1)).json()
    assert counted.input_tokens == ran["usage"]["input_tokens"] > 10

    raw = post(base, "/v1/messages/count_tokens", {"model": MODEL, "messages": messages, "system": system * 5})
    assert raw.status_code == 200 and raw.json() == {"input_tokens": raw.json()["input_tokens"]}
    assert raw.json()["input_tokens"] > counted.input_tokens  # the system prompt counts
    with_tools = post(base, "/v1/messages/count_tokens", {"model": tools_model, "messages": messages,
                                                           "tools": [WEATHER]}).json()["input_tokens"]
    without = post(base, "/v1/messages/count_tokens", {"model": tools_model, "messages": messages}).json()
    assert with_tools > without["input_tokens"]  # the tool list is rendered into the prompt

    with pytest.raises(anthropic.NotFoundError, match="model 'nope' not found"):
        sdk.messages.count_tokens(model="nope", messages=messages)  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError, match="messages is required"):
        sdk.messages.count_tokens(model=MODEL, messages=[])


# -- translation and events, without a server --------------------------------------------


def test_messages_translate_as_ollama_does() -> None:
    user = MessageParam(role="user", content=msgspec_blocks([{"type": "tool_result", "tool_use_id": "t1", "content": "18C"},
                                   {"type": "text", "text": "And "}, {"type": "text", "text": "now?"}]))
    tool, question = convert_message(user)
    assert (tool.role, tool.content, tool.tool_call_id) == ("tool", "18C", "t1")
    assert (question.role, question.content) == ("user", "And now?")

    assistant = MessageParam(role="assistant", content=msgspec_blocks([
        {"type": "thinking", "thinking": "hmm", "signature": "s"}, {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "t2", "name": "f", "input": {"a": 1}}]))
    (turn,) = convert_message(assistant)
    assert (turn.thinking, turn.content) == ("hmm", "Let me look.")
    assert turn.tool_calls and turn.tool_calls[0].id == "t2" and turn.tool_calls[0].function.arguments == {"a": 1}

    request = MessagesRequest(model="m", max_tokens=5, system=msgspec_blocks([{"type": "text", "text": "A"},
                                                                             {"type": "text", "text": "B"}]),
                              messages=[MessageParam(role="user", content="hi")], temperature=0.5, top_k=3,
                              stop_sequences=["x"], tools=None)
    chat = to_chat_request(request)
    assert [(m.role, m.content) for m in chat.messages or []] == [("system", "AB"), ("user", "hi")]
    assert chat.options == {"num_predict": 5, "temperature": 0.5, "top_k": 3, "stop": ["x"]}
    assert chat.stream is False and chat.think is None


def msgspec_blocks(blocks: list[dict[str, Any]]) -> list[ContentBlock]:
    return msgspec.convert(blocks, list[ContentBlock])


def test_event_stream_switches_blocks_by_kind() -> None:
    events = EventStream("msg_1", "m", 3, None)
    call = ResponseToolCall(id="call_1", function=ResponseToolCallFunction(index=0, name="f", arguments={"a": 1}))
    out = [*events.chunk(Delta(thinking="t")), *events.chunk(Delta(content="x")), *events.chunk(Delta(tool_calls=[call])),
           *events.final(Final("stop", [], 1, 1, 4, 1, 2, 1))]
    frames = [sse_frame(e).decode() for e in out]
    names = [f.split("\n")[0][len("event: "):] for f in frames]
    assert names == ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                     "content_block_start", "content_block_delta", "content_block_stop",
                     "content_block_start", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]
    last = json.loads(frames[-2].split("\n")[1][len("data: "):])
    assert last == {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                    "usage": {"input_tokens": 4, "output_tokens": 2}}
