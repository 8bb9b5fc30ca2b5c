"""Tools for a model whose template has none (SmolLM2): the generic format through a real server.

``data/openwebui-0.12.4-new-chat.json`` is the body Open WebUI 0.12.4
sends to /api/chat for a new chat ("Say hello") with its default built-in
tools (native function calling, an admin on a fresh install: time, ask_user,
knowledge, chats, memory, notes, skills, tasks, automations and calendar
tools). The tool names and parameter schemas are Open WebUI 0.12.4's, as
its spec builder makes them; every tool and parameter description is
paraphrased in our own words, at about the original length so the prompt
stays as long as the real one. The file is replayed unchanged. With
``PYLLAMA_GENERIC_TOOLS=0`` every route answers Ollama's 400.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import jsonschema  # type: ignore[import-untyped]
import ollama
import openai
import pytest

from inferenceutil import MODEL, WEATHER, inference_server, ndjson, options, post
from serverutil import start_server

OPEN_WEBUI = json.loads((Path(__file__).parent / "data" / "openwebui-0.12.4-new-chat.json").read_text())
ARGS = {"type": "object", "required": ["city"], "additionalProperties": False,
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}
WEATHER_UNITS = {"type": "function", "function": {**WEATHER["function"], "parameters": ARGS}}
ASK = [{"role": "user", "content": "What is the weather in Paris today?"}]
NO_TOOLS = "registry.ollama.ai/library/smol:latest does not support tools"


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path) -> Iterator[str]:
    with inference_server(module_models_dir, model_path, parallel=1) as url:
        client = ollama.Client(host=url, timeout=120)
        client.create("smollm2", files={"model.gguf": client.create_blob(model_path)})
        yield url


@pytest.fixture(scope="module")
def off(base: str, module_models_dir: Path) -> Iterator[str]:
    """A second server on the same store with the setting off."""
    with start_server({"PYLLAMA_MODELS": str(module_models_dir), "PYLLAMA_GENERIC_TOOLS": "0"}) as url:
        yield url


def _check_call(call: dict[str, Any], tools: list[dict[str, Any]]) -> None:
    """A well-formed call: a known tool, arguments that match its schema."""
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    fn = call["function"]
    assert fn["name"] in schemas, fn
    jsonschema.validate(fn["arguments"], schemas[fn["name"]])
    assert call["id"].startswith("call_")


def _check_answer(message: dict[str, Any], tools: list[dict[str, Any]]) -> None:
    calls = message.get("tool_calls") or []
    assert calls or message["content"].strip(), message
    for call in calls:
        _check_call(call, tools)


def test_open_webui_new_chat_gets_an_answer(base: str) -> None:
    # The one addition to the recorded body: a cap on the answer's length, so a shared CPU finishes in time.
    body = {**OPEN_WEBUI, "options": {"num_predict": 64}}
    with httpx.stream("POST", base + "/api/chat", json=body, timeout=900) as resp:
        lines = [json.loads(line) for line in resp.iter_lines() if line]
    assert resp.status_code == 200, lines
    assert "error" not in lines[-1] and lines[-1]["done"] is True
    content = "".join(line["message"]["content"] for line in lines)
    calls = [c for line in lines for c in line["message"].get("tool_calls") or []]
    _check_answer({"content": content, "tool_calls": calls}, OPEN_WEBUI["tools"])
    print("open-webui answer:", json.dumps({"content": content, "tool_calls": calls}))


def test_weather_is_text_or_a_call_that_matches_the_schema(base: str) -> None:
    body = {"model": MODEL, "messages": ASK, "tools": [WEATHER_UNITS], "stream": False,
            "options": options(num_ctx=1024, num_predict=96)}
    resp = post(base, "/api/chat", body)
    assert resp.status_code == 200, resp.text
    whole = resp.json()["message"]
    _check_answer(whole, [WEATHER_UNITS])
    print("weather answer:", json.dumps(whole))
    # streamed: the same answer (greedy), content in pieces, calls whole
    streamed, lines = ndjson(base, "/api/chat", {**body, "stream": True})
    assert streamed.status_code == 200 and lines[-1]["done"] is True
    assert "".join(line["message"]["content"] for line in lines) == whole["content"]
    calls = [c["function"] for line in lines for c in line["message"].get("tool_calls") or []]
    assert calls == [c["function"] for c in whole.get("tool_calls") or []]


def test_tool_results_reach_the_prompt(base: str) -> None:
    history = [*ASK, {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "Sunny, 24 degrees", "tool_name": "get_weather"}]
    body = {"model": MODEL, "messages": history, "tools": [WEATHER_UNITS], "stream": False,
            "options": options(num_ctx=1024, num_predict=64)}
    shown = post(base, "/api/chat", {**body, "_debug_render_only": True}).json()["_debug_info"]["rendered_template"]
    assert '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}' in shown
    assert '{"tool_results": [{"name": "get_weather", "content": "Sunny, 24 degrees"}]}' in shown
    resp = post(base, "/api/chat", body)
    assert resp.status_code == 200, resp.text
    _check_answer(resp.json()["message"], [WEATHER_UNITS])


def test_show_keeps_ollamas_capabilities(base: str) -> None:
    assert post(base, "/api/show", {"model": MODEL}).json()["capabilities"] == ["completion"]


def _oai(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="x", timeout=120, max_retries=0)


def _oai_call(name: str, arguments: str) -> dict[str, Any]:
    return {"id": "call_x", "function": {"name": name, "arguments": json.loads(arguments)}}


def test_chat_completions(base: str) -> None:
    oai = _oai(base)
    kwargs: dict[str, Any] = {"model": MODEL, "messages": ASK, "tools": [WEATHER_UNITS], "max_tokens": 96,
                              "temperature": 0, "seed": 42}
    message = oai.chat.completions.create(**kwargs).choices[0].message
    calls = [_oai_call(c.function.name, c.function.arguments) for c in message.tool_calls or []]
    _check_answer({"content": message.content or "", "tool_calls": calls}, [WEATHER_UNITS])
    content, pieces = "", {}
    for chunk in oai.chat.completions.create(**kwargs, stream=True):
        delta = chunk.choices[0].delta if chunk.choices else None
        content += (delta.content or "") if delta else ""
        for c in (delta.tool_calls or []) if delta else []:
            pieces.setdefault(c.index, ["", ""])
            pieces[c.index][0] += c.function.name or ""
            pieces[c.index][1] += c.function.arguments or ""
    assert content == (message.content or "")
    assert [_oai_call(n, a)["function"] for n, a in pieces.values()] == [c["function"] for c in calls]


def test_responses(base: str) -> None:
    oai = _oai(base)
    tool = {"type": "function", "name": "get_weather", "description": "Weather for a city", "parameters": ARGS}
    kwargs: dict[str, Any] = {"model": MODEL, "input": ASK[0]["content"], "tools": [tool], "max_output_tokens": 96,
                              "temperature": 0}
    results = [oai.responses.create(**kwargs)]
    results += [e.response for e in oai.responses.create(**kwargs, stream=True) if e.type == "response.completed"]
    outputs = []
    for result in results:
        calls = [_oai_call(item.name, item.arguments) for item in result.output if item.type == "function_call"]
        _check_answer({"content": result.output_text, "tool_calls": calls}, [WEATHER_UNITS])
        outputs.append((result.output_text, [c["function"] for c in calls]))
    assert outputs[0] == outputs[1]


def test_messages(base: str) -> None:
    sdk = anthropic.Anthropic(base_url=base, api_key="x", max_retries=0, timeout=120)
    tool = {"name": "get_weather", "description": "Weather for a city", "input_schema": ARGS}
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 96, "messages": ASK, "tools": [tool],
                              "extra_body": {"temperature": 0}}
    finals = [sdk.messages.create(**kwargs)]
    with sdk.messages.stream(**kwargs) as stream:
        finals.append(stream.get_final_message())
    outputs = []
    for final in finals:
        text = "".join(b.text for b in final.content if b.type == "text")
        calls = [{"id": "call_x", "function": {"name": b.name, "arguments": b.input}}
                 for b in final.content if b.type == "tool_use"]
        assert final.stop_reason == ("tool_use" if calls else final.stop_reason)
        _check_answer({"content": text, "tool_calls": calls}, [WEATHER_UNITS])
        outputs.append((text, [c["function"] for c in calls]))
    assert outputs[0] == outputs[1]


def test_setting_off_restores_ollamas_400(off: str) -> None:
    resp = post(off, "/api/chat", {"model": MODEL, "messages": ASK, "tools": [WEATHER_UNITS]})
    assert resp.status_code == 400 and resp.json() == {"error": NO_TOOLS}
    replay = post(off, "/api/chat", {**OPEN_WEBUI, "model": MODEL})
    assert replay.status_code == 400 and replay.json() == {"error": NO_TOOLS}
    chat = post(off, "/v1/chat/completions", {"model": MODEL, "messages": ASK, "tools": [WEATHER_UNITS]})
    assert chat.status_code == 400 and chat.json()["error"]["message"] == NO_TOOLS
    flat = {"type": "function", "name": "get_weather", "parameters": ARGS}
    responses = post(off, "/v1/responses", {"model": MODEL, "input": "hi", "tools": [flat]})
    assert responses.status_code == 400 and responses.json()["error"]["message"] == NO_TOOLS
    messages = post(off, "/v1/messages", {"model": MODEL, "max_tokens": 8, "messages": ASK,
                                          "tools": [{"name": "get_weather", "input_schema": ARGS}]})
    assert messages.status_code == 400 and messages.json()["error"]["message"] == NO_TOOLS
    assert post(off, "/api/show", {"model": MODEL}).json()["capabilities"] == ["completion"]
