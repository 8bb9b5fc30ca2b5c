"""/v1/responses through a real server: the official ``openai`` client (plain and streaming), the wire
shapes Ollama writes (response object, output items, SSE event order and numbering), input items,
structured output, tool calls, reasoning, and the errors in OpenAI's envelope."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import jsonschema  # type: ignore[import-untyped]
import msgspec
import ollama
import openai
import pytest

from inferenceutil import (
    CALL,
    MODEL,
    PERSON,
    THINKING_TEMPLATE,
    TOOLS_TEMPLATE,
    WEATHER,
    inference_server,
    post,
)

# The Responses API has no ``options``: the models carry the small context and the seed as PARAMETERs.
PARAMS = {"num_ctx": 512, "seed": 42}
SMOL = "smol-r"
TOOLS = "smol-r-tools"
THINK = "smol-r-think"

# Responses' flat form of the shared tool.
FLAT_WEATHER: dict[str, Any] = {"type": "function", **cast(dict[str, Any], WEATHER["function"])}
HELLO = "Name three colours."
RESPONSE_KEYS = [
    "id", "object", "created_at", "completed_at", "status", "incomplete_details", "model", "previous_response_id",
    "instructions", "output", "error", "tools", "tool_choice", "truncation", "parallel_tool_calls", "text", "top_p",
    "presence_penalty", "frequency_penalty", "top_logprobs", "temperature", "reasoning", "usage",
    "max_output_tokens", "max_tool_calls", "store", "background", "service_tier", "metadata", "safety_identifier",
    "prompt_cache_key",
]


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path) -> Iterator[str]:
    with inference_server(module_models_dir, model_path, parallel=2) as url:
        setup = ollama.Client(host=url, timeout=120)
        setup.create(SMOL, from_=MODEL, parameters=PARAMS)
        setup.create(TOOLS, from_=MODEL, parameters=PARAMS, template=TOOLS_TEMPLATE)
        setup.create(THINK, from_=MODEL, parameters=PARAMS, template=THINKING_TEMPLATE)
        yield url


@pytest.fixture(scope="module")
def oai(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="ollama", timeout=120, max_retries=0)


def sse(base: str, body: dict[str, Any]) -> tuple[httpx.Response, list[tuple[str, dict[str, Any]]]]:
    """POST a streaming request; every frame must be ``event: <type>`` + one ``data:`` line of that type."""
    with httpx.stream("POST", base + "/v1/responses", json={**body, "stream": True}, timeout=120) as resp:
        text = "".join(resp.iter_text())
    assert text.endswith("\n\n")
    events = []
    for frame in text[:-2].split("\n\n"):
        event_line, data_line = frame.split("\n")
        name = event_line.removeprefix("event: ")
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name
        events.append((name, data))
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    return resp, events


def test_create_with_the_openai_client_and_wire_shape(base: str, oai: openai.OpenAI) -> None:
    resp = oai.responses.create(model=SMOL, input=HELLO, max_output_tokens=12, temperature=0)
    assert re.fullmatch(r"resp_\d+", resp.id) and resp.object == "response" and resp.model == SMOL
    assert resp.status in ("completed", "incomplete") and resp.output_text
    assert resp.usage is not None and resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert 0 < resp.usage.output_tokens <= 12

    raw = post(base, "/v1/responses", {"model": SMOL, "input": HELLO, "max_output_tokens": 12, "temperature": 0})
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("application/json")
    body = raw.json()
    assert list(body) == RESPONSE_KEYS
    (item,) = body["output"]
    assert re.fullmatch(r"msg_\d+", item["id"])
    assert item == {"id": item["id"], "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": resp.output_text, "annotations": [], "logprobs": []}]}
    assert body["usage"]["input_tokens_details"] == {"cached_tokens": 0}
    assert body["usage"]["output_tokens_details"] == {"reasoning_tokens": 0}
    assert body["completed_at"] >= body["created_at"] > 0
    assert body["temperature"] == 0 and body["top_p"] == 1.0 and body["max_output_tokens"] == 12
    assert body["tools"] == [] and body["tool_choice"] == "auto" and body["truncation"] == "disabled"
    assert body["text"] == {"format": {"type": "text"}} and body["reasoning"] is None and body["store"] is False
    assert body["instructions"] is None and body["previous_response_id"] is None and body["metadata"] == {}


def test_max_output_tokens_cuts_to_incomplete(base: str) -> None:
    body = post(base, "/v1/responses", {"model": SMOL, "input": "Write a long story about a cat.",
                                        "max_output_tokens": 3, "temperature": 0, "truncation": "auto"}).json()
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["usage"]["output_tokens"] == 3 and body["truncation"] == "auto"


def test_stream_event_order(base: str, oai: openai.OpenAI) -> None:
    resp, events = sse(base, {"model": SMOL, "input": HELLO, "max_output_tokens": 6, "temperature": 0})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    names = [name for name, _ in events]
    deltas = [data for name, data in events if name == "response.output_text.delta"]
    assert deltas
    assert names == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * len(deltas),
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.incomplete"]
    created, added, done_item, last = events[0][1], events[2][1], events[-2][1], events[-1][1]
    assert created["response"]["status"] == "in_progress" and created["response"]["output"] == []
    assert created["response"]["usage"] is None and list(created["response"]) == RESPONSE_KEYS
    item_id = added["item"]["id"]
    assert added["item"] == {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant",
                             "content": []}
    text = "".join(d["delta"] for d in deltas)
    assert all(d["item_id"] == item_id and d["output_index"] == 0 and d["content_index"] == 0 for d in deltas)
    assert events[-4][1]["text"] == text and done_item["item"]["content"][0]["text"] == text
    assert last["response"]["id"] == created["response"]["id"] and last["response"]["status"] == "incomplete"
    assert last["response"]["output"] == [done_item["item"]] and last["response"]["usage"]["output_tokens"] == 6

    stream = oai.responses.create(model=SMOL, input=HELLO, max_output_tokens=6, temperature=0, stream=True)
    types = [event.type for event in stream]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.incomplete"


def greedy_chat(base: str, model: str, messages: list[dict[str, Any]], n: int, **extra: Any) -> str:
    """The same conversation through /api/chat: at temperature 0 the same prompt gives the same text."""
    body = {"model": model, "messages": messages, "stream": False,
            "options": {"temperature": 0, "top_p": 1.0, "num_predict": n}, **extra}
    out = post(base, "/api/chat", body).json()
    text: str = out["message"]["content"]
    return text


def greedy_response(base: str, body: dict[str, Any], n: int) -> str:
    out = post(base, "/v1/responses", {**body, "temperature": 0, "max_output_tokens": n})
    assert out.status_code == 200, out.text
    message = out.json()["output"][-1]
    text: str = message["content"][0]["text"]
    return text


def test_instructions_lead_as_a_system_message(base: str, oai: openai.OpenAI) -> None:
    pirate = "Answer like a pirate, briefly."
    told = oai.responses.create(model=SMOL, input="Hi", instructions=pirate, max_output_tokens=8, temperature=0)
    assert told.instructions == pirate
    expected = greedy_chat(base, SMOL, [{"role": "system", "content": pirate}, {"role": "user", "content": "Hi"}], 8)
    assert told.output_text == expected
    # "developer" messages in input are system messages too
    dev = greedy_response(base, {"model": SMOL, "input": [{"role": "developer", "content": pirate},
                                                          {"type": "message", "role": "user", "content": "Hi"}]}, 8)
    assert dev == expected


def test_json_schema_output_validates(oai: openai.OpenAI) -> None:
    resp = oai.responses.create(model=SMOL, input="Describe a person as JSON.", max_output_tokens=60, temperature=0,
                                text={"format": {"type": "json_schema", "name": "person", "schema": PERSON}})
    jsonschema.validate(json.loads(resp.output_text), PERSON)
    assert resp.text is not None and resp.text.format is not None and resp.text.format.type == "json_schema"
    # A question answered with a short object: the grammar's end, not the token limit, stops it.
    ask = "Give a JSON object with one key \"fruit\" and a fruit name as its value."
    loose = oai.responses.create(model=SMOL, input=ask, max_output_tokens=40, temperature=0,
                                 text={"format": {"type": "json_object"}})
    assert loose.status == "completed", loose
    value = json.loads(loose.output_text)
    assert isinstance(value, dict) and list(value) == ["fruit"], value


def test_function_call(base: str, oai: openai.OpenAI) -> None:
    body = {"model": TOOLS, "input": "Weather in Paris?", "tools": [FLAT_WEATHER], "max_output_tokens": 40,
            "temperature": 0, "text": {"format": {"type": "json_schema", "name": "call", "schema": CALL}}}
    out = post(base, "/v1/responses", body).json()
    (call,) = out["output"]
    assert re.fullmatch(r"fc_resp_\d+_0", call["id"]) and out["id"] in call["id"]
    assert call == {"id": call["id"], "type": "function_call", "status": "completed", "call_id": call["call_id"],
                    "name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert call["call_id"].startswith("call_")
    assert out["tools"] == [{**FLAT_WEATHER, "strict": None}]

    _, events = sse(base, body)
    names = [name for name, _ in events]
    assert names == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.function_call_arguments.delta", "response.function_call_arguments.done",
                     "response.output_item.done", "response.completed"]
    added, done = events[2][1], events[5][1]
    assert added["item"]["status"] == "in_progress" and added["item"]["arguments"] == ""
    assert re.fullmatch(r"fc_\d+_0", added["item"]["id"]) and done["item"]["id"] == added["item"]["id"]
    assert events[3][1]["delta"] == events[4][1]["arguments"] == '{"city":"Paris"}'
    assert events[-1][1]["response"]["output"] == [done["item"]]

    via_client = oai.responses.create(  # type: ignore[call-overload]
        model=TOOLS, input="Weather in Paris?", tools=[FLAT_WEATHER], max_output_tokens=40, temperature=0,
        text={"format": {"type": "json_schema", "name": "call", "schema": CALL}})
    first = via_client.output[0]
    assert first.type == "function_call" and json.loads(first.arguments) == {"city": "Paris"}


def test_function_call_output_round_trip(base: str) -> None:
    history: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "18C and sunny"},
    ]
    native: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"},
              {"role": "assistant", "content": "", "tool_calls": [
                  {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
              {"role": "tool", "content": "18C and sunny", "tool_call_id": "call_1", "tool_name": "get_weather"}]
    expected = greedy_chat(base, TOOLS, native, 8, tools=[WEATHER])
    assert greedy_response(base, {"model": TOOLS, "tools": [FLAT_WEATHER], "input": history}, 8) == expected
    # output as content parts, and assistant history as output_text parts
    parts = [*history[:2], {"type": "function_call_output", "call_id": "call_1",
                            "output": [{"type": "input_text", "text": "18C "}, {"type": "input_text",
                                                                                 "text": "and sunny"}]}]
    assert greedy_response(base, {"model": TOOLS, "tools": [FLAT_WEATHER], "input": parts}, 8) == expected
    answered = [*history, {"type": "message", "role": "assistant", "content": [{"type": "output_text",
                                                                                "text": "Sunny."}]}]
    assert post(base, "/v1/responses", {"model": TOOLS, "tools": [FLAT_WEATHER], "input": answered,
                                        "max_output_tokens": 1}).status_code == 200


def test_reasoning_items(base: str) -> None:
    body = {"model": THINK, "input": HELLO, "max_output_tokens": 6}
    out = post(base, "/v1/responses", body).json()
    reasoning = out["output"][0]
    assert reasoning["id"] == f"rs_{out['id']}" and reasoning["type"] == "reasoning"
    text = reasoning["summary"][0]["text"]
    assert text and reasoning == {"id": reasoning["id"], "type": "reasoning",
                                  "summary": [{"type": "summary_text", "text": text}], "encrypted_content": text}

    _, events = sse(base, body)
    names = [name for name, _ in events]
    assert names[2] == "response.output_item.added" and events[2][1]["item"]["type"] == "reasoning"
    assert events[2][1]["item"]["summary"] == []
    deltas = [d["delta"] for n, d in events if n == "response.reasoning_summary_text.delta"]
    (done,) = [d for n, d in events if n == "response.reasoning_summary_text.done"]
    assert done["text"] == "".join(deltas) and done["summary_index"] == 0
    assert events[-1][1]["response"]["output"][0]["summary"][0]["text"] == done["text"]

    off = post(base, "/v1/responses", {**body, "reasoning": {"effort": "none"}}).json()
    assert [item["type"] for item in off["output"]] == ["message"]
    assert off["reasoning"] == {"effort": "none", "summary": None}
    # earlier reasoning in input is accepted as the next assistant turn's thinking
    history = [{"role": "user", "content": "Hi"}, {"type": "reasoning", "id": "rs_1", "summary": [],
                                                   "encrypted_content": "Greet back."},
               {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Again"}]
    assert post(base, "/v1/responses", {"model": THINK, "input": history, "max_output_tokens": 1}).status_code == 200


def test_empty_input_loads(base: str) -> None:
    out = post(base, "/v1/responses", {"model": SMOL}).json()
    assert out["status"] == "completed" and out["output"][0]["content"][0]["text"] == ""


def error_of(resp: httpx.Response) -> dict[str, Any]:
    body = resp.json()
    assert list(body) == ["error"] and list(body["error"]) == ["message", "type", "param", "code"]
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"model": "nope", "input": "hi"}, 404, "model 'nope' not found"),
    ({"input": "hi"}, 400, "model is required"),
    ({"model": 3, "input": "hi"}, 400, "`$.model`"),
    ({"model": SMOL, "input": 3}, 400, "input must be a string or array"),
    ({"model": SMOL, "input": [{"role": 3, "content": "x"}]}, 400, "`$.input[0].role`"),
    ({"model": SMOL, "input": [{"content": "x"}]}, 400, "input[0]: input item missing required 'type' field"),
    ({"model": SMOL, "input": [{"type": "bogus"}]}, 400, 'input[0]: unknown input item type: "bogus"'),
    ({"model": SMOL, "input": [{"role": "user", "content": [{"type": "bogus"}]}]}, 400,
     "input[0]: content[0]: unknown content type: bogus"),
    ({"model": SMOL, "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, 400,
     "file inputs are not currently supported"),
    ({"model": SMOL, "input": [{"role": "user", "content": [{"type": "input_image",
                                                               "image_url": "https://x/y.png"}]}]}, 400,
     "image URLs are not currently supported, please use base64 encoded data instead"),
    ({"model": SMOL, "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{"}]}, 400,
     "failed to parse function call arguments"),
    ({"model": SMOL, "input": "hi", "previous_response_id": "resp_1"}, 400, "previous_response_id is not supported"),
    ({"model": SMOL, "input": "hi", "conversation": "conv_1"}, 400, "background and conversation are not supported"),
    ({"model": SMOL, "input": "hi", "background": True}, 400, "background and conversation are not supported"),
    ({"model": SMOL, "input": "hi", "reasoning": {"effort": "bogus"}}, 400, "invalid reasoning value: 'bogus'"),
    ({"model": SMOL, "input": "hi", "tools": [{"type": "web_search"}]}, 400, 'tool type "web_search"'),
    ({"model": SMOL, "input": "hi", "max_output_tokens": "x"}, 400, "`$.max_output_tokens`"),
])
def test_errors_use_openai_envelope(base: str, body: dict[str, Any], status: int, message: str) -> None:
    resp = post(base, "/v1/responses", body)
    assert resp.status_code == status, resp.text
    error = error_of(resp)
    assert message in error["message"]
    assert error["type"] == {400: "invalid_request_error", 404: "not_found_error"}[status]


def test_bad_json_and_client_errors(base: str, oai: openai.OpenAI) -> None:
    resp = post(base, "/v1/responses", b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 400 and error_of(resp)["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError, match="model 'nope' not found"):
        oai.responses.create(model="nope", input="hi")
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        oai.responses.create(model=SMOL, input="hi", previous_response_id="resp_1")


def test_writer_closes_text_before_calls_and_fails_with_response_failed() -> None:
    """Paths a tiny model does not take on its own: text then a tool call, and a mid-stream failure."""
    from pyllama.server.relay import Delta
    from pyllama.server.responses import ResponseWriter
    from pyllama.server.schemas_inference import ResponseToolCall, ResponseToolCallFunction
    from pyllama.server.schemas_responses import ResponsesRequest

    writer = ResponseWriter(ResponsesRequest(model="m"))
    call = ResponseToolCall(id="call_x", function=ResponseToolCallFunction(index=0, name="f", arguments={"a": 1}))
    events = [*writer.chunk(Delta(thinking="hm")), *writer.chunk(Delta(content="Let me check.")),
              *writer.chunk(Delta(tool_calls=[call])), *writer.chunk(Delta(content="dropped"))]
    kinds = [(e.type, getattr(e, "output_index", None)) for e in events]
    assert kinds == [
        ("response.created", None), ("response.in_progress", None), ("response.output_item.added", 0),
        ("response.reasoning_summary_text.delta", 0), ("response.reasoning_summary_text.done", 0),
        ("response.output_item.done", 0), ("response.output_item.added", 1), ("response.content_part.added", 1),
        ("response.output_text.delta", 1), ("response.output_text.done", 1), ("response.content_part.done", 1),
        ("response.output_item.done", 1), ("response.output_item.added", 2),
        ("response.function_call_arguments.delta", 2), ("response.function_call_arguments.done", 2),
        ("response.output_item.done", 2)]
    failed = writer.failed("runner crashed")
    assert failed.type == "response.failed" and failed.sequence_number == len(events)
    wire = json.loads(msgspec.json.encode(failed))
    assert wire["response"]["status"] == "failed" and wire["response"]["usage"] is None
    assert wire["response"]["error"] == {"code": "server_error", "message": "runner crashed"}
    assert [item["type"] for item in wire["response"]["output"]] == ["reasoning", "message", "function_call"]
    assert wire["response"]["output"][2]["arguments"] == '{"a":1}'
