"""build_prompt for both template kinds, message shaping, truncation and capabilities."""

from __future__ import annotations

from typing import Any

import pytest
from templatesutil import WEATHER_TOOL, template_text

from pyllama.store.gguf_meta import GGUFInfo
from pyllama.templates import (
    build_prompt,
    chat_messages,
    generate_messages,
    model_capabilities,
    required_capabilities,
    think_values,
    to_openai_messages,
)

CHATML = template_text("chatml.gotmpl")


def test_go_prompt_with_default_template() -> None:
    rendered = build_prompt(None, generate_messages("Why is the sky blue?"))
    assert rendered.kind == "go" and rendered.prompt == "Why is the sky blue?"


def test_generate_messages_follow_ollama() -> None:
    msgs = generate_messages("p", system="", model_system="model sys",
                             model_messages=[{"role": "user", "content": "seed"}], images=["aW1n"])
    assert msgs == [{"role": "system", "content": "model sys"}, {"role": "user", "content": "seed"},
                    {"role": "user", "content": "p", "images": ["aW1n"]}]
    assert generate_messages("p", system="req", model_system="m", use_model_messages=False,
                             model_messages=[{"role": "user", "content": "seed"}])[0]["content"] == "req"
    assert chat_messages([{"role": "user", "content": "u"}], model_system="S")[0] == {"role": "system", "content": "S"}
    assert chat_messages([{"role": "system", "content": "mine"}], model_system="S") == [
        {"role": "system", "content": "mine"}]


def test_raw_context_and_suffix() -> None:
    msgs = generate_messages("def f(")
    assert build_prompt(CHATML, msgs, raw=True).prompt == "def f("
    assert build_prompt(CHATML, msgs, context_text="<old>").prompt.startswith("<old><|im_start|>user")
    qwen = template_text("qwen2.5.gotmpl")
    fim = build_prompt(qwen, msgs, suffix="return 1").prompt
    assert fim == "<|fim_prefix|>def f(<|fim_suffix|>return 1<|fim_middle|>"


def test_images_get_ollama_tags() -> None:
    msgs = [{"role": "user", "content": "what is this?", "images": ["aGk=", "aGk="]},
            {"role": "user", "content": "and [img] here", "images": ["aGk="]}]
    rendered = build_prompt(CHATML, msgs)
    assert "[img-0][img-1]what is this?\n\nand [img-2] here" in rendered.prompt
    assert len(rendered.images) == 3


def test_truncation_keeps_system_and_last_message() -> None:
    msgs = [{"role": "system", "content": "S"}] + [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message number {i} " * 5} for i in range(9)]
    full = build_prompt(CHATML, msgs)
    rendered = build_prompt(CHATML, msgs, num_ctx=len(full.prompt) // 2, count_tokens=len)
    assert 0 < rendered.truncated < len(msgs) - 1
    assert rendered.prompt.startswith("<|im_start|>system\nS<|im_end|>\n")
    assert rendered.prompt.endswith("message number 8 <|im_end|>\n<|im_start|>assistant\n")
    assert len(rendered.prompt) <= len(full.prompt) // 2
    tiny = build_prompt(CHATML, msgs, num_ctx=1, count_tokens=len)
    assert "message number 8" in tiny.prompt and "message number 7" not in tiny.prompt


@pytest.mark.parametrize("think, expected", [
    (None, (False, "", False)), (True, (True, "medium", True)), (False, (False, "", True)),
    ("high", (True, "high", True)),
])
def test_think_values(think: Any, expected: tuple[bool, str, bool]) -> None:
    assert think_values(think) == expected


def test_think_default_and_bad_level() -> None:
    assert think_values(None, default_think=True) == (True, "medium", True)
    with pytest.raises(ValueError, match="invalid think value"):
        think_values("extreme")


def test_go_prompt_carries_parser_settings() -> None:
    rendered = build_prompt(template_text("qwen3.gotmpl"), [{"role": "user", "content": "hi"}],
                            tools=[WEATHER_TOOL], think=True)
    assert rendered.thinking_tags == ("<think>", "</think>") and rendered.tool_tag == "<tool_call>"
    assert rendered.think and rendered.prompt.endswith("hi /think<|im_end|>\n<|im_start|>assistant\n")


def test_openai_conversion_links_tool_results() -> None:
    msgs: list[dict[str, Any]] = [
        {"role": "assistant", "content": "", "thinking": "hmm", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"id": "abc", "function": {"name": "get_time", "arguments": {}}}]},
        {"role": "tool", "content": "noon", "tool_name": "get_time"},
        {"role": "tool", "content": "18C", "tool_name": "get_weather"},
    ]
    out = to_openai_messages(msgs)
    assert out[0]["reasoning_content"] == "hmm"
    assert out[0]["tool_calls"][0] == {"type": "function", "id": "call_0",
                                       "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    assert (out[1]["tool_call_id"], out[1]["name"]) == ("abc", "get_time")
    assert (out[2]["tool_call_id"], out[2]["name"]) == ("call_0", "get_weather")


def test_jinja_prompt_history_prefill_and_thinking(jinja_templates: Any) -> None:
    qwen = jinja_templates("Qwen-Qwen2.5-7B-Instruct")
    history: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"},
               {"role": "assistant", "content": "", "tool_calls": [
                   {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
               {"role": "tool", "content": "18 degrees", "tool_name": "get_weather"}]
    rendered = build_prompt(qwen, history, tools=[WEATHER_TOOL])
    assert "18 degrees" in rendered.prompt and rendered.prompt.endswith("<|im_start|>assistant\n")
    assert rendered.grammar and rendered.grammar_lazy and "<tool_call>" in rendered.preserved_tokens
    prefill = build_prompt(qwen, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello the"}])
    assert prefill.prompt.endswith("<|im_start|>assistant\nHello the")
    qwen3 = jinja_templates("Qwen-Qwen3-0.6B")
    on = build_prompt(qwen3, [{"role": "user", "content": "2+2?"}], think=True)
    off = build_prompt(qwen3, [{"role": "user", "content": "2+2?"}], think=False)
    assert on.prompt != off.prompt and "<think>" in off.prompt


def test_jinja_fill_in_the_middle(jinja_templates: Any) -> None:
    qwen = jinja_templates("Qwen-Qwen2.5-7B-Instruct")
    msgs = generate_messages("def f(")
    fim = build_prompt(qwen, msgs, suffix="return 1", fim_tokens=("<PRE>", "<SUF>", "<MID>"))
    assert fim.prompt == "<PRE>def f(<SUF>return 1<MID>"
    with pytest.raises(ValueError, match="fill-in-the-middle"):
        build_prompt(qwen, msgs, suffix="return 1")


def _info(**kv: Any) -> GGUFInfo:
    return GGUFInfo(kv={"general.architecture": "llama", **kv})


def test_capabilities_from_go_templates() -> None:
    assert model_capabilities(_info(), go_template=template_text("qwen2.5.gotmpl")) == ["completion", "tools", "insert"]
    assert model_capabilities(_info(), go_template=template_text("qwen3.gotmpl")) == [
        "completion", "tools", "thinking"]
    assert model_capabilities(_info(), go_template=CHATML) == ["completion"]
    # .ToolCalls alone does not make a tools model; only .Tools does
    assert model_capabilities(_info(), go_template="{{ range .Messages }}{{ .ToolCalls }}{{ end }}") == ["completion"]
    assert model_capabilities(_info(), go_template=CHATML, family="gptoss") == ["completion", "thinking"]
    assert model_capabilities(_info(**{"llama.pooling_type": 1}), go_template=CHATML) == ["embedding"]
    assert model_capabilities(_info(), go_template=CHATML, has_projector=True) == ["completion", "vision"]
    assert model_capabilities(_info(), go_template="{{ broken") == ["completion"]


def test_capabilities_from_jinja(jinja_templates: Any) -> None:
    qwen3 = jinja_templates("Qwen-Qwen3-0.6B")
    caps = {**qwen3.caps, "supports_thinking": qwen3.supports_thinking}
    assert model_capabilities(_info(), jinja_template=qwen3.source(), jinja_caps=caps) == [
        "completion", "tools", "thinking"]
    assert model_capabilities(_info(), jinja_template=qwen3.source()) == ["completion", "tools", "thinking"]
    fim = _info(**{"tokenizer.ggml.fim_pre_token_id": 1})
    assert model_capabilities(fim, jinja_template="{{ messages }}") == ["completion", "insert"]
    assert required_capabilities(tools=True, think=True, images=True, suffix=True) == [
        "completion", "tools", "insert", "vision", "thinking"]


def _chatml_by_hand(msgs: list[dict[str, Any]]) -> str:
    """chatml.gotmpl written out as string formatting. As in Ollama,
    consecutive messages of one role are first joined with a blank line."""
    blocks: list[tuple[str, str]] = []
    for m in msgs:
        if blocks and blocks[-1][0] == m["role"]:
            blocks[-1] = (m["role"], blocks[-1][1] + "\n\n" + m["content"])
        else:
            blocks.append((m["role"], m["content"]))
    return "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in blocks) + "<|im_start|>assistant\n"


# Rendered lengths (characters) of the 14 messages below, in order:
# 35 35 47 49 61 63 75 36 77 89 91 103 116 129, plus 22 for the closing
# "<|im_start|>assistant\n"; the two system messages side by side make one
# block of 43 (not 35 + 36). Ollama's loop keeps the last message, then adds
# older ones while the prompt (with every system message before the first
# kept one) still fits.
@pytest.mark.parametrize(("num_ctx", "kept", "length"), [
    (1, [0, 7, 13], 194),              # the last message stays even when nothing fits
    (150, [0, 7, 13], 194),
    (400, [0, 7, 12, 13], 310),        # adding message 11 (103) would make 413
    (900, [0, *range(4, 14)], 897),    # adding message 3 (49) would make 946
    (100_000, list(range(14)), 1028),
])
def test_truncation_matches_ollamas_loop(num_ctx: int, kept: list[int], length: int) -> None:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "first"}]
    for i in range(12):
        msgs.append({"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " * (i + 1)})
        if i == 5:
            msgs.append({"role": "system", "content": "middle"})
    expected = _chatml_by_hand([msgs[i] for i in kept])
    assert len(expected) == length
    assert build_prompt(CHATML, msgs, num_ctx=num_ctx, count_tokens=len).prompt == expected


def test_load_chat_templates_is_cached(vocab_model: Any) -> None:
    from pyllama.templates import load_chat_templates

    first = load_chat_templates(str(vocab_model.path))
    assert first is load_chat_templates(str(vocab_model.path))
    rendered = build_prompt(first, [{"role": "user", "content": "Hi!"}])
    assert rendered.kind == "jinja" and rendered.prompt.endswith("<|im_start|>assistant\n")
