"""The OpenAI-compatible routes through a real server: the official ``openai`` client for every
route, raw httpx for SSE framing, exact shapes and the error envelope."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import ollama
import openai
import pytest

from inferenceutil import client  # noqa: F401 - a fixture
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
from serverutil import start_server

HELLO = [{"role": "user", "content": "Name three colours."}]
GREEDY: dict[str, Any] = {"temperature": 0, "seed": 42}
PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path) -> Iterator[str]:
    with inference_server(module_models_dir, model_path, parallel=4) as url:
        native = ollama.Client(host=url)
        blob = native.create_blob(model_path)
        native.create("smol-tools", files={"model.gguf": blob}, template=TOOLS_TEMPLATE)
        native.create("smol-think", files={"model.gguf": blob}, template=THINKING_TEMPLATE)
        yield url


@pytest.fixture(scope="module")
def oai(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="anything", timeout=120, max_retries=0)


def sse(base: str, path: str, body: dict[str, Any]) -> tuple[httpx.Response, list[Any]]:
    """POST and read server-sent events: every event is one ``data:`` line and a blank line."""
    with httpx.stream("POST", base + path, json=body, timeout=120) as resp:
        raw = "".join(resp.iter_text())
    assert raw.endswith("\n\n")
    events = []
    for block in raw[:-2].split("\n\n"):
        assert block.startswith("data: ") and "\n" not in block, block
        payload = block[len("data: "):]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return resp, events


def assert_openai_error(resp: httpx.Response, status: int, kind: str, words: str) -> None:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["type"] == kind and words in error["message"]
    assert error["param"] is None and error["code"] is None


# -- chat completions ------------------------------------------------------------------------


def test_chat_completion_matches_native_chat(base: str, oai: openai.OpenAI, client: ollama.Client) -> None:
    out = oai.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=12, **GREEDY)  # type: ignore[arg-type]
    assert out.id.startswith("chatcmpl-") and out.object == "chat.completion"
    assert out.model == MODEL and out.system_fingerprint == "fp_ollama" and isinstance(out.created, int)
    choice = out.choices[0]
    assert choice.index == 0 and choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length" and choice.message.tool_calls is None
    assert out.usage is not None and out.usage.completion_tokens == 12
    assert out.usage.total_tokens == out.usage.prompt_tokens + 12 and out.usage.prompt_tokens > 0
    # The same request natively (the /v1 layer is a translation of /api/chat).
    native = client.chat(MODEL, messages=HELLO, options={"num_predict": 12, **GREEDY, "top_p": 1.0})
    assert native.message.content == choice.message.content
    raw = post(base, "/v1/chat/completions", {"model": MODEL, "messages": HELLO, "max_tokens": 3}).json()
    assert list(raw) == ["id", "object", "created", "model", "system_fingerprint", "choices", "usage"]
    assert list(raw["choices"][0]) == ["index", "message", "finish_reason"]
    assert list(raw["choices"][0]["message"]) == ["role", "content"]


def test_chat_stream_framing_and_usage(base: str, oai: openai.OpenAI) -> None:
    whole = oai.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=10, **GREEDY)  # type: ignore[arg-type]
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 10, "stream": True,
            "stream_options": {"include_usage": True}, **GREEDY}
    resp, events = sse(base, "/v1/chat/completions", body)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    *chunks, finish, usage, _ = events
    ids = {e["id"] for e in events[:-1]}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    assert len({e["created"] for e in events[:-1]}) == 1
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk" and chunk["system_fingerprint"] == "fp_ollama"
        (choice,) = chunk["choices"]
        assert choice["finish_reason"] is None and choice["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == whole.choices[0].message.content
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "length"}] and "usage" not in finish
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 10

    # Through the client: the same text, and usage on the last chunk.
    stream = oai.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=10, stream=True,  # type: ignore
                                         stream_options={"include_usage": True}, **GREEDY)
    parts = list(stream)
    assert "".join(p.choices[0].delta.content or "" for p in parts if p.choices) == whole.choices[0].message.content
    assert parts[-1].usage is not None and parts[-1].usage.completion_tokens == 10
    # Without include_usage there is no usage chunk.
    _, plain = sse(base, "/v1/chat/completions", {**body, "stream_options": None})
    assert all("usage" not in e for e in plain[:-1]) and plain[-2]["choices"][0]["finish_reason"] == "length"


def test_stop_and_structured_outputs(oai: openai.OpenAI) -> None:
    stopped = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Count: 1, 2, 3, 4"}],
                                          stop=[","], max_tokens=30, **GREEDY)  # type: ignore[arg-type]
    assert "," not in (stopped.choices[0].message.content or "") and stopped.choices[0].finish_reason == "stop"

    schema = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Invent a person."}], max_tokens=60, **GREEDY,  # type: ignore
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}})
    jsonschema.validate(json.loads(schema.choices[0].message.content or ""), PERSON)
    # A question answered with a short object: the grammar's end, not max_tokens, stops it.
    ask = "Give a JSON object with one key \"fruit\" and a fruit name as its value."
    obj = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": ask}],
                                      max_tokens=40, response_format={"type": "json_object"}, **GREEDY)  # type: ignore
    assert obj.choices[0].finish_reason == "stop", obj
    value = json.loads(obj.choices[0].message.content or "")
    assert isinstance(value, dict) and list(value) == ["fruit"], value


def test_tool_calls_have_openai_shape(base: str, oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    fmt = {"type": "json_schema", "json_schema": {"name": "call", "schema": CALL}}
    out = oai.chat.completions.create(model="smol-tools", messages=messages, tools=[WEATHER],  # type: ignore
                                      response_format=fmt, max_tokens=40, **GREEDY)  # type: ignore[arg-type]
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    body = {"model": "smol-tools", "messages": messages, "tools": [WEATHER], "response_format": fmt,
            "max_tokens": 40, "stream": True, **GREEDY}
    _, events = sse(base, "/v1/chat/completions", body)
    calls = [c for e in events[:-1] for ch in e["choices"] for c in ch["delta"].get("tool_calls", [])]
    assert len(calls) == 1 and list(calls[0]) == ["id", "index", "type", "function"]
    assert calls[0]["index"] == 0 and json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"

    # The call and its result in the history: arguments go back to the template as an object.
    history = [*messages, {"role": "assistant", "content": None, "tool_calls": [
        {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}]
    rendered = post(base, "/v1/chat/completions", {"model": "smol-tools", "messages": history, "tools": [WEATHER],
                                                   "_debug_render_only": True}).json()["_debug_info"]
    assert '{"name": "get_weather", "arguments": {"city":"Paris"}}' in rendered["rendered_template"]
    assert "18C and sunny" in rendered["rendered_template"]
    bad = post(base, "/v1/chat/completions", {"model": "smol-tools", "messages": [
        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]})
    assert_openai_error(bad, 400, "invalid_request_error", "invalid tool call arguments")


def test_reasoning_field_and_effort(base: str, oai: openai.OpenAI) -> None:
    _, events = sse(base, "/v1/chat/completions", {"model": "smol-think", "messages": HELLO, "max_tokens": 8,
                                                   "stream": True, **GREEDY})
    reasoning = "".join(e["choices"][0]["delta"].get("reasoning", "") for e in events[:-2])
    assert reasoning and all("<think>" not in e["choices"][0]["delta"]["content"] for e in events[:-2])
    whole = post(base, "/v1/chat/completions", {"model": "smol-think", "messages": HELLO, "max_tokens": 8,
                                                **GREEDY}).json()
    assert whole["choices"][0]["message"]["reasoning"] == reasoning
    off = post(base, "/v1/chat/completions", {"model": "smol-think", "messages": HELLO, "reasoning_effort": "none",
                                              "_debug_render_only": True}).json()
    assert not off["_debug_info"]["rendered_template"].endswith("<think>")
    high = post(base, "/v1/chat/completions", {"model": "smol-think", "messages": HELLO,
                                               "reasoning": {"effort": "high"}, "_debug_render_only": True}).json()
    assert high["_debug_info"]["rendered_template"].endswith("<think>")
    bad = post(base, "/v1/chat/completions", {"model": "smol-think", "messages": HELLO, "reasoning_effort": "lots"})
    assert_openai_error(bad, 400, "invalid_request_error", "invalid reasoning value: 'lots'")
    no_think = post(base, "/v1/chat/completions", {"model": MODEL, "messages": HELLO, "reasoning_effort": "high"})
    assert_openai_error(no_think, 400, "invalid_request_error", "does not support thinking")


def test_logprobs(oai: openai.OpenAI) -> None:
    out = oai.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4, logprobs=True, top_logprobs=3,
                                      **GREEDY)  # type: ignore[arg-type]
    assert out.choices[0].logprobs is not None
    content = out.choices[0].logprobs.content or []
    assert len(content) == 4 and "".join(t.token for t in content) == out.choices[0].message.content
    for item in content:
        assert item.logprob <= 0 and len(item.top_logprobs) == 3
        assert item.top_logprobs[0].logprob == pytest.approx(item.logprob, abs=1e-4)


def test_content_parts_become_native_messages(base: str) -> None:
    parts = [{"type": "text", "text": "PART-ONE"}, {"type": "text", "text": "PART-TWO"}]
    rendered = post(base, "/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": parts}],
                                                   "_debug_render_only": True}).json()["_debug_info"]
    text = rendered["rendered_template"]
    assert text.index("PART-ONE") < text.index("PART-TWO") and text.count("<|im_start|>user") == 2


@pytest.mark.parametrize(("part", "words"), [
    ({"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}},
     "image URLs are not currently supported, please use base64 encoded data instead"),
    ({"type": "image_url", "image_url": "data:image/gif;base64,R0lGOD=="}, "invalid image input"),
    ({"type": "image_url", "image_url": {"url": "data:image/png;base64,%%%"}}, "invalid image input"),
    ({"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG_1PX}},
     "this model is missing data required for image input"),
    ({"type": "video", "video": "x"}, "invalid message format"),
    ({"type": "text", "text": 3}, "invalid message format"),
])
def test_content_part_errors(base: str, part: dict[str, Any], words: str) -> None:
    resp = post(base, "/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": [part]}]})
    assert_openai_error(resp, 400, "invalid_request_error", words)


@pytest.mark.parametrize(("body", "status", "kind", "words"), [
    ({"model": "no-such-model", "messages": HELLO}, 404, "not_found_error", "model 'no-such-model' not found"),
    ({"model": MODEL, "messages": []}, 400, "invalid_request_error", "[] is too short - 'messages'"),
    ({"model": MODEL}, 400, "invalid_request_error", "[] is too short - 'messages'"),
    ({"model": MODEL, "messages": HELLO, "temperature": "hot"}, 400, "invalid_request_error", "`$.temperature`"),
    ({"model": MODEL, "messages": [{"role": "user", "content": None}]}, 400, "invalid_request_error",
     "invalid message content type: <nil>"),
    ({"model": MODEL, "messages": [{"role": "wizard", "content": "hi"}]}, 400, "invalid_request_error",
     "invalid role"),
    ({"model": "", "messages": HELLO}, 400, "invalid_request_error", "model is required"),
])
def test_chat_errors(base: str, body: dict[str, Any], status: int, kind: str, words: str) -> None:
    assert_openai_error(post(base, "/v1/chat/completions", body), status, kind, words)


def test_errors_reach_the_client_as_exceptions(base: str, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="not found"):
        oai.chat.completions.create(model="missing", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="too short"):
        oai.chat.completions.create(model=MODEL, messages=[])
    bad_json = post(base, "/v1/chat/completions", b"{not json", headers={"content-type": "application/json"})
    assert_openai_error(bad_json, 400, "invalid_request_error", "JSON")


def test_concurrent_streams_match_sequential(oai: openai.OpenAI, base: str) -> None:
    prompts = [f"Say a word about {topic}." for topic in ("cats", "rain", "music", "bread")]
    sequential = [oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": p}],
                                              max_tokens=8, **GREEDY).choices[0].message.content  # type: ignore
                  for p in prompts]

    async def one(aclient: openai.AsyncOpenAI, prompt: str) -> str:
        stream = await aclient.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}],
                                                       max_tokens=8, stream=True, **GREEDY)  # type: ignore
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def all_at_once() -> list[str]:
        async with openai.AsyncOpenAI(base_url=base + "/v1", api_key="x", max_retries=0) as aclient:
            return list(await asyncio.gather(*(one(aclient, p) for p in prompts)))

    assert asyncio.run(all_at_once()) == sequential


# -- completions ---------------------------------------------------------------------------------


def test_completions(base: str, oai: openai.OpenAI, client: ollama.Client) -> None:
    out = oai.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=6, **GREEDY)  # type: ignore
    assert out.id.startswith("cmpl-") and out.object == "text_completion" and out.system_fingerprint == "fp_ollama"
    assert out.choices[0].text and out.choices[0].finish_reason == "length"
    assert out.usage is not None and out.usage.completion_tokens == 6
    native = client.generate(MODEL, "The capital of France is", options={"num_predict": 6, **GREEDY, "top_p": 1.0})
    assert native.response == out.choices[0].text

    body = {"model": MODEL, "prompt": "The capital of France is", "max_tokens": 6, "stream": True,
            "stream_options": {"include_usage": True}, **GREEDY}
    _, events = sse(base, "/v1/completions", body)
    *chunks, finish, usage, done = events
    assert done == "[DONE]" and "".join(c["choices"][0]["text"] for c in chunks) == out.choices[0].text
    for chunk in [*chunks, finish]:
        assert chunk["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        assert chunk["object"] == "text_completion"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert finish["choices"][0]["finish_reason"] == "length"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 6

    probs = post(base, "/v1/completions", {"model": MODEL, "prompt": "Hello", "max_tokens": 3, "logprobs": 2}).json()
    content = probs["choices"][0]["logprobs"]["content"]
    assert len(content) == 3 and all(len(item["top_logprobs"]) == 2 for item in content)


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"model": MODEL, "prompt": "x", "stop": ["a", 3]}, 400, "invalid type for 'stop' field: float64"),
    ({"model": MODEL, "prompt": ["a", "b"]}, 400, "`$.prompt`"),
    ({"model": MODEL, "prompt": "x", "suffix": "y"}, 400, "does not support insert"),
    ({"model": "missing", "prompt": "x"}, 404, "model 'missing' not found"),
])
def test_completion_errors(base: str, body: dict[str, Any], status: int, words: str) -> None:
    resp = post(base, "/v1/completions", body)
    assert_openai_error(resp, status, "invalid_request_error" if status == 400 else "not_found_error", words)


# -- embeddings ------------------------------------------------------------------------------------


def test_embeddings_float_base64_and_dimensions(base: str, oai: openai.OpenAI, client: ollama.Client) -> None:
    native = client.embed(MODEL, input=["red apple", "blue sky"]).embeddings
    floats = post(base, "/v1/embeddings", {"model": MODEL, "input": ["red apple", "blue sky"]}).json()
    assert floats["object"] == "list" and floats["model"] == MODEL
    assert floats["usage"]["prompt_tokens"] == floats["usage"]["total_tokens"] > 0
    assert [d["index"] for d in floats["data"]] == [0, 1] and all(d["object"] == "embedding" for d in floats["data"])
    for got, want in zip(floats["data"], native):
        assert got["embedding"] == pytest.approx(want, abs=1e-6)

    raw = post(base, "/v1/embeddings", {"model": MODEL, "input": "red apple", "encoding_format": "base64"}).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(packed) // 4}f", packed)) == pytest.approx(native[0], abs=1e-6)
    # The openai client asks for base64 by default and decodes it.
    out = oai.embeddings.create(model=MODEL, input="red apple")
    assert out.data[0].embedding == pytest.approx(native[0], abs=1e-6)

    cut = oai.embeddings.create(model=MODEL, input="red apple", dimensions=8)
    vector = cut.data[0].embedding
    assert len(vector) == 8 and math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=1e-5)
    # "" is one (empty) input, as Ollama reads it; with no tokens to pool it is a 400.
    empty = post(base, "/v1/embeddings", {"model": MODEL, "input": ""})
    assert_openai_error(empty, 400, "invalid_request_error", "an embedding input is empty")


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"model": MODEL, "input": []}, 400, "invalid input"),
    ({"model": MODEL}, 400, "invalid input"),
    ({"model": MODEL, "input": [[1, 2, 3]]}, 400, "invalid input"),
    ({"model": MODEL, "input": "x", "encoding_format": "hex"}, 400,
     "Invalid value for 'encoding_format' = hex. Supported values: ['float', 'base64']."),
    ({"model": "missing", "input": "x"}, 404, "model 'missing' not found"),
])
def test_embedding_errors(base: str, body: dict[str, Any], status: int, words: str) -> None:
    resp = post(base, "/v1/embeddings", body)
    assert_openai_error(resp, status, "invalid_request_error" if status == 400 else "not_found_error", words)


# -- models ----------------------------------------------------------------------------------------


def test_models_list_and_retrieve(base: str, oai: openai.OpenAI) -> None:
    listing = httpx.get(base + "/v1/models").json()
    assert listing["object"] == "list"
    ids = [m["id"] for m in listing["data"]]
    assert {"smol:latest", "smol-tools:latest", "smol-think:latest"} <= set(ids)
    for entry in listing["data"]:
        assert list(entry) == ["id", "object", "created", "owned_by"]
        assert entry["object"] == "model" and entry["owned_by"] == "library" and entry["created"] > 1_600_000_000
    assert [m.id for m in oai.models.list()] == ids
    one = oai.models.retrieve("smol")
    assert one.id == "smol" and one.owned_by == "library"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("missing-model")
    assert_openai_error(httpx.get(base + "/v1/models/missing-model"), 404, "not_found_error",
                        "model 'missing-model' not found")


def test_models_data_is_null_on_an_empty_store(tmp_path: Path) -> None:
    with start_server({"PYLLAMA_MODELS": str(tmp_path / "models")}) as url:
        assert httpx.get(url + "/v1/models").json() == {"object": "list", "data": None}
