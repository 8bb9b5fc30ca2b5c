"""/api/chat through a real server: streaming and not, history shapes, structured outputs,
concurrent streams, client disconnects, and the 400s."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import ollama
import pytest

from inferenceutil import client  # noqa: F401 - a fixture
from inferenceutil import (
    CALL,
    CREATED_AT,
    METRICS,
    MODEL,
    PLAN_TEMPLATE,
    THINKING_TEMPLATE,
    TOOLS_TEMPLATE,
    WEATHER,
    inference_server,
    ndjson,
    options,
    post,
)

HELLO = [{"role": "user", "content": "Name three colours."}]
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "pets": {"type": "array", "items": {"type": "string", "enum": ["cat", "dog"]}, "maxItems": 2},
    },
    "required": ["name", "age", "pets"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path) -> Iterator[str]:
    with inference_server(module_models_dir, model_path, parallel=4) as url:
        yield url


def test_chat_stream_and_non_stream(base: str, client: ollama.Client) -> None:
    whole = client.chat(MODEL, messages=HELLO, options=options(num_predict=10))
    assert whole.message.role == "assistant" and whole.message.content
    assert whole.done and whole.done_reason in ("stop", "length")
    for name in METRICS:
        assert isinstance(getattr(whole, name), int) and getattr(whole, name) > 0, name

    parts = list(client.chat(MODEL, messages=HELLO, stream=True, options=options(num_predict=10)))
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    assert parts[-1].done and parts[-1].message.content == ""

    resp, lines = ndjson(base, "/api/chat", {"model": MODEL, "messages": HELLO, "options": options(num_predict=10)})
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    *chunks, last = lines
    for chunk in chunks:
        assert chunk["message"]["role"] == "assistant" and isinstance(chunk["message"]["content"], str)
        assert chunk["done"] is False and CREATED_AT.match(chunk["created_at"])
        assert "thinking" not in chunk["message"] and "tool_calls" not in chunk["message"]
    assert last["message"] == {"role": "assistant", "content": ""} and last["done"] is True
    assert "context" not in last
    assert all(isinstance(last[name], int) for name in METRICS)


def test_history_with_tool_calls_thinking_and_tool_results(base: str) -> None:
    messages = [
        {"role": "SYSTEM", "content": "You answer briefly."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "thinking": "I should call the tool.",
         "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "18C and sunny", "tool_name": "get_weather"},
        {"role": "user", "content": "Thanks. Summarise."},
    ]
    body = post(base, "/api/chat", {"model": MODEL, "messages": messages, "_debug_render_only": True}).json()
    rendered = body["_debug_info"]["rendered_template"]
    assert "You answer briefly." in rendered and "18C and sunny" in rendered and "Summarise" in rendered
    out = post(base, "/api/chat", {"model": MODEL, "messages": messages, "stream": False,
                                   "options": options(num_predict=3)})
    assert out.status_code == 200 and out.json()["done"] is True


def test_logprobs_in_chat(base: str) -> None:
    body = post(base, "/api/chat", {"model": MODEL, "messages": HELLO, "stream": False, "logprobs": True,
                                    "options": options(num_predict=3)}).json()
    assert len(body["logprobs"]) == 3 and "top_logprobs" not in body["logprobs"][0]


def test_structured_output_follows_schema(client: ollama.Client) -> None:
    out = client.chat(MODEL, messages=[{"role": "user", "content": "Describe a person as JSON."}], format=PERSON,
                      options=options(num_predict=120))
    assert out.done_reason == "stop", out
    value = json.loads(out.message.content or "")
    jsonschema.validate(value, PERSON)


def test_format_json_is_an_object(client: ollama.Client) -> None:
    # A question answered with a short object: the grammar's end, not num_predict, stops it.
    out = client.generate(MODEL, "Give a JSON object with one key \"fruit\" and a fruit name as its value.",
                          format="json", options=options(num_predict=40))
    assert out.done_reason == "stop", out
    value = json.loads(out.response or "")
    assert isinstance(value, dict) and list(value) == ["fruit"], value


def test_concurrent_streams_match_sequential(base: str, client: ollama.Client) -> None:
    prompts = ["Name a fruit.", "Name a planet.", "Name an ocean.", "Name a metal."]
    sequential = [client.chat(MODEL, messages=[{"role": "user", "content": p}],
                              options=options(num_predict=8)).message.content for p in prompts]

    async def one(aclient: ollama.AsyncClient, prompt: str) -> str:
        text = ""
        async for part in await aclient.chat(MODEL, messages=[{"role": "user", "content": prompt}], stream=True,
                                             options=options(num_predict=8)):
            text += part.message.content or ""
        return text

    async def all_at_once() -> list[str]:
        aclient = ollama.AsyncClient(host=base, timeout=120)
        return list(await asyncio.gather(*(one(aclient, p) for p in prompts)))

    assert asyncio.run(all_at_once()) == sequential


def test_disconnect_frees_the_slot(base: str, client: ollama.Client) -> None:
    # Counting never ends on its own, so only a cancel frees these slots.
    endless = {"model": MODEL, "prompt": "1, 2, 3, 4, 5, 6,", "raw": True,
               "options": options(num_predict=100000, num_ctx=512)}
    for _ in range(4):  # as many streams as the runner has slots
        with httpx.stream("POST", base + "/api/generate", json=endless, timeout=60) as resp:
            lines = resp.iter_lines()
            assert json.loads(next(lines))["done"] is False
    after = client.chat(MODEL, messages=HELLO, options=options(num_predict=3))
    assert after.done and after.eval_count == 3


def test_non_stream_and_queued_requests_cancel_when_the_client_leaves(base: str, client: ollama.Client) -> None:
    # Six non-streaming endless requests for four slots: four run, two wait in the queue. Every
    # client gives up; if any of them kept its slot, the last request would never get one.
    endless = {"model": MODEL, "prompt": "1, 2, 3, 4, 5, 6,", "raw": True, "stream": False,
               "options": options(num_predict=100000, num_ctx=512)}

    outcomes: list[str] = []

    def give_up() -> None:
        try:
            httpx.post(base + "/api/generate", json=endless, timeout=httpx.Timeout(60, read=3))
            outcomes.append("answered")
        except httpx.ReadTimeout:
            outcomes.append("gave up")

    threads = [threading.Thread(target=give_up) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == ["gave up"] * 6
    after = client.chat(MODEL, messages=HELLO, options=options(num_predict=3))
    assert after.done and after.eval_count == 3


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"model": "", "messages": HELLO}, 400, "model is required"),
    ({"model": "nope", "messages": HELLO}, 404, "model 'nope' not found"),
    ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, 400, "invalid role 'wizard'"),
    ({"model": MODEL, "messages": [{"role": "user", "content": 3}]}, 400, "$.messages[0].content"),
    ({"model": MODEL, "messages": "hello"}, 400, "$.messages"),
    ({"model": MODEL, "messages": [{"role": "assistant", "content": "",
                                    "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}]}, 400,
     "arguments"),
    ({"model": MODEL, "messages": HELLO, "think": True}, 400, '"smol" does not support thinking'),
    ({"model": MODEL, "messages": HELLO, "top_logprobs": -1}, 400, "top_logprobs must be between 0 and 20"),
    ({"model": MODEL, "messages": HELLO, "options": {"stop": 5}}, 400, 'option "stop" must be of type array'),
    ({"model": MODEL, "messages": [{"role": "user", "content": "x", "images": ["aGVsbG8="]}]}, 400,
     "this model is missing data required for image input"),
    ({"model": MODEL, "messages": HELLO, "format": 5}, 400, "invalid format"),
    ({"model": MODEL, "messages": HELLO, "tools": [{"function": {"name": "f", "parameters": "x"}}]}, 400,
     "`$.tools[0].function.parameters`"),
    ({"model": MODEL, "messages": HELLO, "tools": [{"function": 3}]}, 400, "`$.tools[0].function`"),
    ({"model": MODEL, "messages": HELLO, "options": {"num_thread": -1}}, 400, "num_thread must be >= 0"),
])
def test_chat_errors(base: str, body: dict[str, Any], status: int, error: str) -> None:
    resp = post(base, "/api/chat", body)
    assert resp.status_code == status, resp.text
    assert error in resp.json()["error"]


def test_chat_load_and_unload(base: str, client: ollama.Client) -> None:
    loaded = post(base, "/api/chat", {"model": MODEL, "messages": [], "options": options()}).json()
    assert loaded["message"] == {"role": "assistant", "content": ""} and loaded["done_reason"] == "load"
    assert "smol:latest" in [m.name for m in client.ps().models]
    unloaded = post(base, "/api/chat", {"model": MODEL, "keep_alive": 0}).json()
    assert unloaded["done_reason"] == "unload" and unloaded["done"] is True
    assert "smol:latest" not in [m.name for m in client.ps().models]


def test_tool_calls_stream_as_whole_objects(base: str, client: ollama.Client, model_path: Path) -> None:
    client.create("smol-tools", files={"model.gguf": client.create_blob(model_path)}, template=TOOLS_TEMPLATE)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    body = {"model": "smol-tools", "messages": messages, "tools": [WEATHER], "format": CALL,
            "options": options(num_predict=40)}
    _, lines = ndjson(base, "/api/chat", body)
    calls = [c for line in lines for c in line["message"].get("tool_calls", [])]
    assert len(calls) == 1
    call = calls[0]
    assert list(call) == ["id", "function"] and call["id"].startswith("call_") and len(call["id"]) == 13
    assert call["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}
    assert "".join(line["message"]["content"] for line in lines).strip() == ""

    whole = client.chat("smol-tools", messages=messages, tools=[WEATHER], format=CALL,
                        options=options(num_predict=40))
    assert whole.message.tool_calls and whole.message.tool_calls[0].function.arguments == {"city": "Paris"}


def test_thinking_streams_in_its_own_field(base: str, client: ollama.Client, model_path: Path) -> None:
    client.create("smol-think", files={"model.gguf": client.create_blob(model_path)}, template=THINKING_TEMPLATE)
    assert "thinking" in (client.show("smol-think").capabilities or [])
    # The prompt opens a thinking block, so output starts as thinking (think defaults to on).
    _, lines = ndjson(base, "/api/chat", {"model": "smol-think", "messages": HELLO,
                                          "options": options(num_predict=8)})
    thinking = "".join(line["message"].get("thinking", "") for line in lines)
    assert thinking and all("<think>" not in line["message"]["content"] for line in lines)
    whole = client.chat("smol-think", messages=HELLO, think=True, options=options(num_predict=8))
    assert whole.message.thinking == thinking
    off = post(base, "/api/chat", {"model": "smol-think", "messages": HELLO, "think": False,
                                   "_debug_render_only": True}).json()
    assert not off["_debug_info"]["rendered_template"].endswith("<think>")


def test_chat_truncates_old_messages_to_fit(base: str) -> None:
    history: list[dict[str, str]] = [{"role": "system", "content": "SYSTEM-KEPT"}]
    for i in range(40):
        history.append({"role": "user", "content": f"OLD-{i} " + "filler words " * 10})
        history.append({"role": "assistant", "content": "ok"})
    history.append({"role": "user", "content": "LAST-QUESTION"})
    body = {"model": MODEL, "messages": history, "options": options(num_ctx=512), "_debug_render_only": True}
    rendered = post(base, "/api/chat", body).json()["_debug_info"]["rendered_template"]
    assert "SYSTEM-KEPT" in rendered and "LAST-QUESTION" in rendered
    assert "OLD-0 " not in rendered and "OLD-39 " in rendered
    whole = post(base, "/api/chat", {**body, "truncate": False}).json()["_debug_info"]["rendered_template"]
    assert "OLD-0 " in whole


COLOUR = {"type": "object", "properties": {"colour": {"type": "string", "enum": ["red", "blue"]}},
          "required": ["colour"], "additionalProperties": False}


def test_format_applies_after_thinking(base: str, client: ollama.Client, model_path: Path) -> None:
    client.create("smol-plan", files={"model.gguf": client.create_blob(model_path)}, template=PLAN_TEMPLATE)
    messages = [{"role": "user", "content": "Pick a colour and answer in JSON."}]
    _, lines = ndjson(base, "/api/chat", {"model": "smol-plan", "messages": messages, "format": COLOUR,
                                          "options": options(num_predict=80)})
    thinking = "".join(line["message"].get("thinking", "") for line in lines)
    content = "".join(line["message"]["content"] for line in lines)
    assert thinking.strip(), "the model thinks unconstrained first"
    jsonschema.validate(json.loads(content), COLOUR)
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    whole = client.chat("smol-plan", messages=messages, format=COLOUR, options=options(num_predict=80))
    assert whole.message.thinking == thinking and json.loads(whole.message.content or "") == json.loads(content)
