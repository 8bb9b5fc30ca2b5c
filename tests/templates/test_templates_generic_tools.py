"""The generic tool format for templates without tools: prompt, grammar and answer parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from templatesutil import WEATHER_TOOL

from pyllama.config import Config
from pyllama.templates import build_prompt
from pyllama.templates.generic_tools import answer_grammar, generic_messages

ASK = [{"role": "user", "content": "Weather in Paris?"}]
CHATML = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""


def _parse(rendered: Any, pieces: list[str]) -> tuple[str, list[dict[str, Any]]]:
    parser = rendered.output_parser()
    content, calls = "", []
    for piece in pieces:
        delta = parser.feed(piece)
        content, calls = content + delta.content, calls + delta.tool_calls
    delta = parser.finish()
    return content + delta.content, calls + delta.tool_calls


def _chars(text: str) -> list[str]:
    return list(text)


def test_jinja_template_without_tools_gets_the_instruction(vocab_model: Any) -> None:
    from pyllama import _native

    smol = _native.ChatTemplates(vocab_model)
    rendered = build_prompt(smol, ASK, tools=[WEATHER_TOOL], generic_tools=True)
    assert rendered.tool_format == "generic" and rendered.tools == [WEATHER_TOOL]
    assert rendered.prompt.startswith("<|im_start|>system\nYou can use tools.")
    assert json.dumps(WEATHER_TOOL["function"]["name"]) in rendered.prompt
    assert '{"response": "<your reply>"}' in rendered.prompt
    assert rendered.prompt.endswith("<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n")
    assert "root ::=" in rendered.answer_grammar and '\\"get_weather\\"' in rendered.answer_grammar
    assert 'space ::= | " "\n' in rendered.answer_grammar  # no pretty-printing
    # without the flag the template's own rendering stays (it ignores the tools)
    plain = build_prompt(smol, ASK, tools=[WEATHER_TOOL])
    assert plain.tool_format == "" and plain.answer_grammar == "" and "You can use tools" not in plain.prompt


def test_go_template_keeps_the_users_system_prompt_first() -> None:
    rendered = build_prompt(CHATML, [{"role": "system", "content": "Be brief."}, *ASK], tools=[WEATHER_TOOL],
                            generic_tools=True)
    assert rendered.prompt.startswith("<|im_start|>system\nBe brief.\n\nYou can use tools.")


def test_history_is_written_in_the_answer_format() -> None:
    history = [*ASK, {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "Sunny", "tool_name": "get_weather"},
        {"role": "tool", "content": "22C", "tool_name": "get_weather"},
        {"role": "assistant", "content": "Sunny, 22C."}, {"role": "user", "content": "Thanks"}]
    out = generic_messages(history, [WEATHER_TOOL])
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert json.loads(out[2]["content"]) == {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}
    assert json.loads(out[3]["content"]) == {"tool_results": [{"name": "get_weather", "content": "Sunny"},
                                                              {"name": "get_weather", "content": "22C"}]}
    assert json.loads(out[4]["content"]) == {"response": "Sunny, 22C."}
    # a final assistant message is a prefill and stays as it is
    assert generic_messages([*ASK, {"role": "assistant", "content": "Sure"}], [WEATHER_TOOL])[-1]["content"] == "Sure"


def test_reply_streams_as_it_is_decoded() -> None:
    rendered = build_prompt(CHATML, ASK, tools=[WEATHER_TOOL], generic_tools=True)
    answer = ' {"response": "Hi \\"you\\"\\n\\u00e9\\ud83d\\ude00!"}'
    assert _parse(rendered, _chars(answer)) == ('Hi "you"\né😀!', [])
    parser = rendered.output_parser()
    assert parser.feed('{"response": "Hel').content == "Hel"  # no wait for the end of the object
    assert parser.feed("lo\\").content == "lo"  # half an escape waits
    assert parser.feed('n"}').content == "\n"


def test_tool_calls_come_out_whole() -> None:
    rendered = build_prompt(CHATML, ASK, tools=[WEATHER_TOOL], generic_tools=True)
    answer = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}, ' \
             '{"name": "get_weather", "arguments": {"city": "Rome"}}]}'
    content, calls = _parse(rendered, _chars(answer))
    assert content == ""
    assert [c["function"] for c in calls] == [{"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}},
                                              {"index": 1, "name": "get_weather", "arguments": {"city": "Rome"}}]
    assert all(c["id"].startswith("call_") and len(c["id"]) == 13 for c in calls)


@pytest.mark.parametrize("answer", [
    "Plain words, no JSON.",  # a user format or unconstrained output: passed on as it is
    '{"answer": 42}',
    '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Pa',  # cut short by num_predict
    '{"tool_calls": [{"name": "nope", "arguments": {}}]}',  # an unknown tool is no call
])
def test_text_outside_the_format_is_never_dropped(answer: str) -> None:
    rendered = build_prompt(CHATML, ASK, tools=[WEATHER_TOOL], generic_tools=True)
    assert _parse(rendered, _chars(answer)) == (answer, [])


def test_bad_parameter_schema_names_the_tool() -> None:
    bad = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "x": {"$ref": "#/$defs/missing"}}}}}
    with pytest.raises(ValueError, match='parameters of tool "f"'):
        answer_grammar([bad])


@pytest.mark.parametrize(("env", "on"), [({}, True), ({"PYLLAMA_GENERIC_TOOLS": "0"}, False),
                                         ({"PYLLAMA_GENERIC_TOOLS": "false"}, False),
                                         ({"PYLLAMA_GENERIC_TOOLS": "1"}, True)])
def test_setting(env: dict[str, str], on: bool) -> None:
    assert Config.from_env(env).generic_tools is on
