"""llama.cpp's lazy tool-call grammar through a real server.

SmolLM2's own template (and gemma3's) has no tool format llama.cpp knows,
so the model is stored with llama.cpp's Hermes 3 template put in its GGUF.
The tool asks for an argument the conversation never showed (``days``):
unconstrained, the model copies the earlier calls and leaves it out; with
the grammar, whatever follows ``<tool_call>`` is a call the schema accepts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import ollama
import pytest

from ggufutil import with_chat_template
from inferenceutil import inference_server, options, post

HERMES = Path(__file__).resolve().parents[1] / "llama.cpp" / "models" / "templates" / \
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja"
MODEL = "hermes"
ARGS = {"type": "object", "required": ["city", "days"], "properties": {
    "city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}}}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": ARGS}}


def _call(city: str) -> dict[str, Any]:
    return {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"city": city}}}]}


# two earlier calls make the 135M model start a third one with "<tool_call>"
HISTORY = [{"role": "user", "content": "Weather in Paris?"}, _call("Paris"), {"role": "tool", "content": "Sunny"},
           {"role": "user", "content": "Weather in Rome?"}, _call("Rome"), {"role": "tool", "content": "Rainy"},
           {"role": "user", "content": "Weather in London?"}]


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not HERMES.is_file():
        pytest.skip(f"{HERMES} missing (run ci/ to fetch llama.cpp)")
    gguf = with_chat_template(model_path, tmp_path_factory.mktemp("hermes") / "hermes.gguf", HERMES.read_text())
    with inference_server(module_models_dir, model_path, parallel=1) as url:
        client = ollama.Client(host=url, timeout=120)
        client.create(MODEL, files={"model.gguf": client.create_blob(gguf)})
        yield url


def test_tool_call_follows_the_schema(base: str) -> None:
    body = {"model": MODEL, "messages": HISTORY, "tools": [WEATHER], "stream": False,
            "options": options(num_ctx=2048, num_predict=64)}
    resp = post(base, "/api/chat", body)
    assert resp.status_code == 200, resp.text
    message = resp.json()["message"]
    assert message["content"] == ""
    (call,) = message["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    jsonschema.validate(call["function"]["arguments"], ARGS)  # "days" is there: the grammar put it there
    assert call["function"]["arguments"]["city"] == "London"


def test_unconstrained_the_call_lacks_days(base: str) -> None:
    """The control: the same prompt through raw /api/generate (no tools, so no grammar) gives a call
    copied from the history, without "days"."""
    raw = post(base, "/api/generate", {"model": MODEL, "raw": True, "stream": False, "prompt": _hermes_prompt(base),
                                       "options": options(num_ctx=2048, num_predict=64)})
    assert raw.status_code == 200, raw.text
    text = raw.json()["response"]
    assert text.startswith("<tool_call>") and '"days"' not in text


def test_format_wins_over_the_tool_grammar(base: str) -> None:
    schema = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string", "maxLength": 20}},
              "additionalProperties": False}
    body = {"model": MODEL, "messages": HISTORY, "tools": [WEATHER], "stream": False, "format": schema,
            "options": options(num_ctx=2048, num_predict=64)}
    resp = post(base, "/api/chat", body)
    assert resp.status_code == 200, resp.text
    message = resp.json()["message"]
    assert "tool_calls" not in message
    jsonschema.validate(json.loads(message["content"]), schema)


def _hermes_prompt(base: str) -> str:
    """The prompt /api/chat renders for HISTORY with the tool (its debug render)."""
    resp = post(base, "/api/chat", {"model": MODEL, "messages": HISTORY, "tools": [WEATHER], "_debug_render_only": True})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["_debug_info"]["rendered_template"])
