"""Output parsing: thinking and tool calls from canned model outputs, streamed piece by piece."""

from __future__ import annotations

from typing import Any

import pytest
from templatesutil import TIME_TOOL, WEATHER_TOOL

from pyllama.templates import build_prompt
from pyllama.templates.parsers import GoOutputParser, OutputParser, ParsedDelta, ThinkingParser, ToolCallParser

PARIS = {"name": "get_weather", "arguments": {"city": "Paris"}}


def run(parser: OutputParser, text: str, step: int) -> ParsedDelta:
    """Feed ``text`` in ``step``-sized pieces and merge every delta, as a streaming client would."""
    total = ParsedDelta()
    for i in range(0, len(text), step):
        total.extend(parser.feed(text[i:i + step]))
    total.extend(parser.finish())
    return total


def calls(delta: ParsedDelta) -> list[dict[str, Any]]:
    return [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in delta.tool_calls]


STEPS = [1, 3, 1000]


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("tag, output, content, expected", [
    # Qwen 2.5 / Hermes style
    ("<tool_call>", 'Let me check. <tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
     "Let me check. ", [PARIS]),
    ("<tool_call>", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
                    '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>',
     "", [PARIS, {"name": "get_time", "arguments": {}}]),
    # Llama 3.x: no tag in the template, a JSON object at the start
    ("{", '{"name": "get_weather", "parameters": {"city": "Paris"}}', "", [PARIS]),
    ("{", 'It is sunny {"city": "Paris"}', 'It is sunny {"city": "Paris"}', []),
    ("{", '{"answer": 42}', '{"answer": 42}', []),
    # Mistral
    ("[TOOL_CALLS] [", '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]', "", [PARIS]),
    ("[TOOL_CALLS] [", "No tools needed.", "No tools needed.", []),
])
def test_go_tool_calls(tag: str, output: str, content: str, expected: list[dict[str, Any]], step: int) -> None:
    parser = GoOutputParser(tools=[WEATHER_TOOL, TIME_TOOL], tool_tag=tag)
    got = run(parser, output, step)
    assert got.content == content
    assert calls(got) == expected
    assert [c["function"]["index"] for c in got.tool_calls] == list(range(len(expected)))
    assert all(c["id"].startswith("call_") and len(c["id"]) == 13 for c in got.tool_calls)


def test_tool_call_needs_matching_parameters() -> None:
    parser = ToolCallParser([WEATHER_TOOL], "<tool_call>")
    got, content = parser.add('<tool_call>{"name": "get_weather", "arguments": {"town": "Paris"}}</tool_call>')
    assert got == [] and content == ""  # after the tag, unparsable calls are dropped, as Ollama does


def test_partial_tag_is_held_back() -> None:
    parser = ToolCallParser([WEATHER_TOOL], "<tool_call>")
    assert parser.add("Hi <tool") == ([], "Hi ")
    calls_, content = parser.add('_call>{"name": "get_weather", "arguments": {"city": "Paris"}}')
    assert content == "" and calls_[0]["function"]["arguments"] == {"city": "Paris"}


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("output, thinking, content", [
    ("<think>\nLet me think.\n</think>\n\nThe answer is 4.", "Let me think.\n", "The answer is 4."),
    ("  <think>a</think>b", "a", "b"),
    ("No thinking here.", "", "No thinking here."),
    ("<think>unfinished", "unfinished", ""),
])
def test_thinking_split(output: str, thinking: str, content: str, step: int) -> None:
    parser = GoOutputParser(thinking_tags=("<think>", "</think>"), think=True)
    got = run(parser, output, step)
    assert (got.thinking, got.content) == (thinking, content)


def test_thinking_opened_by_the_prompt() -> None:
    parser = GoOutputParser(thinking_tags=("<think>", "</think>"), think=True,
                            prompt="<|im_start|>assistant\n<think>\n")
    got = run(parser, "reasoning</think>answer", 2)
    assert (got.thinking, got.content) == ("reasoning", "answer")


def test_thinking_off_leaves_tags_in_content() -> None:
    parser = GoOutputParser(thinking_tags=("<think>", "</think>"), think=False)
    assert run(parser, "<think>x</think>y", 1).content == "<think>x</think>y"


def test_thinking_then_tool_call() -> None:
    parser = GoOutputParser(thinking_tags=("<think>", "</think>"), think=True, tools=[WEATHER_TOOL],
                            tool_tag="<tool_call>")
    got = run(parser, '<think>need weather</think>\n<tool_call>\n{"name": "get_weather", "arguments": '
                      '{"city": "Paris"}}\n</tool_call>', 4)
    assert got.thinking == "need weather" and got.content == "" and calls(got) == [PARIS]


def test_thinking_parser_whitespace_rules() -> None:
    parser = ThinkingParser("<think>", "</think>")
    assert parser.add("<thi") == ("", "")
    assert parser.add("nk>  ") == ("", "")
    assert parser.add("  idea</th") == ("idea", "")
    assert parser.add("ink>   ") == ("", "")
    assert parser.add(" text ") == ("", "text ")


# -- Jinja templates through llama.cpp's parser --------------------------------
@pytest.mark.parametrize("step", [1, 7])
@pytest.mark.parametrize("template, output, content", [
    ("Qwen-Qwen2.5-7B-Instruct",
     'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', "Checking.\n"),
    ("NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
     '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', ""),
    ("meta-llama-Llama-3.1-8B-Instruct", '{"name": "get_weather", "parameters": {"city": "Paris"}}', ""),
    ("mistralai-Mistral-Nemo-Instruct-2407",
     '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcdefghi"}]', ""),
])
def test_jinja_tool_calls_streamed(jinja_templates: Any, template: str, output: str, content: str, step: int) -> None:
    rendered = build_prompt(jinja_templates(template), [{"role": "user", "content": "Weather in Paris?"}],
                            tools=[WEATHER_TOOL])
    assert rendered.kind == "jinja" and "get_weather" in rendered.prompt
    got = run(rendered.output_parser(), output, step)
    assert got.content.strip() == content.strip()
    assert calls(got) == [PARIS]


def test_jinja_thinking_streamed(jinja_templates: Any) -> None:
    rendered = build_prompt(jinja_templates("Qwen-Qwen3-0.6B"), [{"role": "user", "content": "2+2?"}], think=True)
    parser = rendered.output_parser()
    pieces = [parser.feed(ch) for ch in "<think>\nadd them\n</think>\n\nIt is 4."]
    got = ParsedDelta()
    for piece in pieces:
        got.extend(piece)
    got.extend(parser.finish())
    assert got.thinking.strip() == "add them"
    assert got.content.strip() == "It is 4."
    assert any(p.thinking for p in pieces[:-5])  # thinking arrives while it streams, not only at the end


@pytest.mark.parametrize("level, effort", [("high", "high"), ("max", "high"), ("low", "low")])
def test_jinja_harmony_reasoning_effort_and_channels(jinja_templates: Any, level: str, effort: str) -> None:
    rendered = build_prompt(jinja_templates("openai-gpt-oss-120b"), [{"role": "user", "content": "hi"}], think=level)
    assert f"Reasoning: {effort}\n" in rendered.prompt
    out = "<|channel|>analysis<|message|>thinking hard<|end|><|start|>assistant<|channel|>final<|message|>Hello!"
    got = run(rendered.output_parser(), out, 3)
    assert (got.thinking, got.content) == ("thinking hard", "Hello!")


LONG = "The answer is long, with words and more words. " * 40


@pytest.mark.parametrize("template, tools, output", [
    ("Qwen-Qwen3-0.6B", False, "<think>\n" + "step by step. " * 30 + "\n</think>\n\n" + LONG),
    ("Qwen-Qwen2.5-7B-Instruct", True,
     LONG + '\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'),
    ("meta-llama-Llama-3.1-8B-Instruct", True, LONG),
    ("mistralai-Mistral-Nemo-Instruct-2407", True,
     LONG + '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcdefghi"}]'),
])
@pytest.mark.parametrize("step", [1, 5])
def test_jinja_streaming_equals_one_final_parse(jinja_templates: Any, template: str, tools: bool, output: str,
                                                step: int) -> None:
    """Deltas concatenated = parsing the whole output at once (the fast path skips no marker)."""
    from pyllama import _native

    rendered = build_prompt(jinja_templates(template), [{"role": "user", "content": "Weather in Paris?"}],
                            tools=[WEATHER_TOOL] if tools else None, think=True)
    got = run(rendered.output_parser(), output, step)
    assert rendered.chat_params is not None
    final = _native.parse_chat_output(output, rendered.chat_params)
    assert got.content == final["content"]
    assert got.thinking == final.get("reasoning_content", "").lstrip()
    assert [c["function"]["name"] for c in got.tool_calls] == [c["name"] for c in final["tool_calls"]]


def test_thinking_left_open_earlier_in_the_prompt() -> None:
    parser = GoOutputParser(thinking_tags=("<think>", "</think>"), think=True, prompt="A: <think>\nplan: ")
    assert run(parser, "more</think>done", 3).thinking == "more"
    closed = GoOutputParser(thinking_tags=("<think>", "</think>"), think=True, prompt="<think>\n\n</think>\n\n")
    assert run(closed, "answer", 3).content == "answer"


def test_jinja_forced_open_thinking(jinja_templates: Any) -> None:
    """DeepSeek-R1's template opens <think> in the prompt: the output starts inside the thinking."""
    rendered = build_prompt(jinja_templates("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B"),
                            [{"role": "user", "content": "hi"}], think=True)
    assert rendered.prompt.endswith("<think>\n")
    got = run(rendered.output_parser(), "I think hard.</think>Hello there.", 2)
    assert (got.thinking, got.content) == ("I think hard.", "Hello there.")
