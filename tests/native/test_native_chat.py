"""Chat templates (llama.cpp common's Jinja engine) and output parsing."""
from __future__ import annotations

from pathlib import Path

import pytest

from pyllama import _native

TEMPLATES = Path(__file__).resolve().parents[2] / "llama.cpp" / "models" / "templates"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = {"name": "get_weather", "arguments": '{"city": "Paris"}'}


def test_model_template_renders_chatml(model):
    assert "<|im_start|>" in model.chat_template
    templates = _native.ChatTemplates(model)
    rendered = templates.apply([{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Hi!"}])
    assert rendered["prompt"] == ("<|im_start|>system\nBe brief.<|im_end|>\n"
                                  "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n")
    no_gen = templates.apply([{"role": "user", "content": "Hi!"}], add_generation_prompt=False)
    assert not no_gen["prompt"].endswith("<|im_start|>assistant\n")
    assert isinstance(templates.caps, dict)
    assert templates.source().startswith("{%")


@pytest.mark.parametrize("template, output", [
    ("Qwen-Qwen2.5-7B-Instruct",
     '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'),
    ("NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
     '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'),
    ("meta-llama-Llama-3.1-8B-Instruct", '{"name": "get_weather", "parameters": {"city": "Paris"}}'),
    ("mistralai-Mistral-Nemo-Instruct-2407",
     '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcdefghi"}]'),
])
def test_tool_calls_rendered_and_parsed(model, template, output):
    templates = _native.ChatTemplates(model, (TEMPLATES / f"{template}.jinja").read_text())
    rendered = templates.apply([{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL])
    assert "get_weather" in rendered["prompt"]
    msg = _native.parse_chat_output(output, rendered)
    assert [{"name": c["name"], "arguments": c["arguments"]} for c in msg["tool_calls"]] == [CALL]
    assert msg["content"] == ""


def test_thinking_split_from_content(model):
    templates = _native.ChatTemplates(model, (TEMPLATES / "Qwen-Qwen3-0.6B.jinja").read_text())
    assert templates.supports_thinking
    rendered = templates.apply([{"role": "user", "content": "2+2?"}])
    msg = _native.parse_chat_output("<think>\nadd them\n</think>\n\nIt is 4.", rendered)
    assert msg["reasoning_content"].strip() == "add them"
    assert msg["content"].strip() == "It is 4."
    partial = _native.parse_chat_output("<think>\nadd th", rendered, partial=True)
    assert partial["reasoning_content"].startswith("add th")
    off = templates.apply([{"role": "user", "content": "2+2?"}], enable_thinking=False)
    assert off["prompt"] != rendered["prompt"]


def test_history_with_tool_calls_and_results(model):
    templates = _native.ChatTemplates(model, (TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text())
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "id": "call_1", "function": CALL}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees and sunny"},
    ]
    prompt = templates.apply(messages, tools=[WEATHER_TOOL])["prompt"]
    assert "18 degrees and sunny" in prompt
    assert prompt.count("get_weather") >= 2


def test_json_schema_in_chat_inputs_yields_grammar(model):
    rendered = _native.ChatTemplates(model).apply(
        [{"role": "user", "content": "JSON please"}],
        json_schema={"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]})
    assert "root" in rendered["grammar"]


def test_bad_template_and_messages(model):
    with pytest.raises(ValueError):
        _native.ChatTemplates(model, "{% for x in %}")
    templates = _native.ChatTemplates(model)
    with pytest.raises(ValueError):
        templates.apply([{"role": "user"}, 5])
    with pytest.raises(ValueError):
        templates.apply([{"role": "user", "content": "x"}], tools=[{"type": "function"}])
