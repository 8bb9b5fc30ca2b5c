"""Ollama's template semantics over real TEMPLATE texts, with exact expected prompts."""

from __future__ import annotations

from typing import Any

import pytest
from templatesutil import CONVERSATIONS, TIME_TOOL, WEATHER_TOOL, template_text

from pyllama.templates.gotypes import to_messages, to_tools
from pyllama.templates.ollama import OllamaTemplate, collate, parse_ollama_template

SUAU = "system-user-assistant-user"
# Expected renders of Ollama's own template test data (template/testdata/<name>/<conversation>).
EXPECTED = {
    ("chatml.gotmpl", SUAU):
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n"
        "<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n<|im_start|>user\n"
        "I'd like to show off how chat templating works!<|im_end|>\n<|im_start|>assistant\n",
    ("llama3-instruct.gotmpl", SUAU):
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello, how are you?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nI'm doing great. How can I help you today?<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nI'd like to show off how chat templating works!<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ("gemma-instruct.gotmpl", SUAU):
        "<start_of_turn>user\nYou are a helpful assistant.\nHello, how are you?<end_of_turn>\n<start_of_turn>model\n"
        "I'm doing great. How can I help you today?<end_of_turn>\n<start_of_turn>user\n"
        "I'd like to show off how chat templating works!<end_of_turn>\n<start_of_turn>model\n",
    ("mistral-instruct.gotmpl", SUAU):
        "[INST] You are a helpful assistant.\n\nHello, how are you?[/INST] I'm doing great. How can I help you "
        "today?</s>[INST] I'd like to show off how chat templating works![/INST]",
    ("mistral-instruct.gotmpl", "user"): "[INST] Hello, how are you?[/INST]",
    ("llama2-chat.gotmpl", SUAU):
        "[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello, how are you? [/INST] I'm doing great. "
        "How can I help you today?</s><s>[INST] <<SYS>><</SYS>>\n\nI'd like to show off how chat templating "
        "works! [/INST]",
    ("gemma-instruct.gotmpl", "user"): "<start_of_turn>user\nHello, how are you?<end_of_turn>\n<start_of_turn>model\n",
}


@pytest.mark.parametrize("name, conversation", sorted(EXPECTED))
def test_real_templates_render_exactly(name: str, conversation: str) -> None:
    tmpl = OllamaTemplate(template_text(name))
    assert tmpl.execute(to_messages(CONVERSATIONS[conversation])) == EXPECTED[(name, conversation)]


@pytest.mark.parametrize("legacy, messages_form", [
    ("chatml-legacy.gotmpl", "chatml.gotmpl"),
    ("llama3-legacy.gotmpl", "llama3-instruct.gotmpl"),
])
@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
def test_per_turn_path_equals_messages_path(legacy: str, messages_form: str, conversation: str) -> None:
    """Templates without .Messages render turn by turn and give the same prompt (Ollama's legacy test)."""
    msgs = to_messages(CONVERSATIONS[conversation])
    old = OllamaTemplate(template_text(legacy))
    assert not old.uses_messages
    assert old.execute(msgs) == OllamaTemplate(template_text(messages_form)).execute(msgs)


MISTRAL_TURNS = [
    ("no response", "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] "),
    ("response", "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] {{ .Response }}"),
    ("messages", '[INST] {{ if .System }}{{ .System }}\n\n{{ end }}\n{{- range .Messages }}\n{{- if eq .Role "user" }}'
                 '{{ .Content }}[/INST] {{ else if eq .Role "assistant" }}{{ .Content }}[INST] {{ end }}\n{{- end }}'),
]


@pytest.mark.parametrize("form, source", MISTRAL_TURNS)
@pytest.mark.parametrize("system, expected", [
    (False, "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] "),
    (True, "[INST] You are a helpful assistant!\n\nHello friend![/INST] Hello human![INST] What is your name?[/INST] "),
])
def test_per_turn_rule_with_and_without_response(form: str, source: str, system: bool, expected: str) -> None:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "Hello friend!"},
                                  {"role": "assistant", "content": "Hello human!"},
                                  {"role": "user", "content": "What is your name?"}]
    if system:
        msgs.insert(0, {"role": "system", "content": "You are a helpful assistant!"})
    assert OllamaTemplate(source).execute(to_messages(msgs)) == expected


@pytest.mark.parametrize("source", [
    "[INST] {{ .Prompt }}[/INST] ",
    "[INST] {{ .Prompt }}[/INST] {{ .Response }}",
    '\n{{- range $i, $m := .Messages }}\n{{- if eq .Role "user" }}[INST] {{ .Content }}[/INST] '
    '{{ else if eq .Role "assistant" }}{{ .Content }}{{ end }}\n{{- end }}',
])
def test_final_assistant_message_is_a_prefill(source: str) -> None:
    msgs = to_messages([{"role": "user", "content": "Hello friend!"}, {"role": "assistant", "content": "Hello human!"},
                        {"role": "user", "content": "What is your name?"},
                        {"role": "assistant", "content": "My name is Ollama and I"}])
    assert OllamaTemplate(source).execute(msgs) == \
        "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] My name is Ollama and I"


def test_open_turn_drops_text_after_response() -> None:
    tmpl = OllamaTemplate("<s>{{ .Prompt }}|{{ .Response }}</s>{{ if .Prompt }}X{{ end }}")
    msgs = to_messages([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                        {"role": "user", "content": "c"}])
    assert tmpl.execute(msgs) == "<s>a|b</s>X<s>c|"


def test_suffix_renders_prompt_and_suffix() -> None:
    source = "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>\n{{- else }}{{ .Prompt }}\n{{- end }}"
    tmpl = OllamaTemplate(source)
    assert tmpl.execute(to_messages([{"role": "user", "content": "hello"}])) == "hello"
    assert tmpl.execute([], prompt="def add(", suffix="return x") == "<PRE> def add( <SUF>return x <MID>"


@pytest.mark.parametrize("source, expected", [
    ("{{ .Prompt }}", ["prompt", "response"]),
    ("{{ .System }} {{ .Prompt }}", ["prompt", "response", "system"]),
    ("{{ with .Tools }}{{ . }}{{ end }} {{ .System }} {{ .Prompt }}", ["prompt", "response", "system", "tools"]),
    ("{{ range .Messages }}{{ .Role }} {{ .Content }}{{ end }}", ["content", "messages", "role"]),
    ('{{ range .Messages }}{{ if eq .Role "tool" }}Tool Result: {{ .ToolName }} {{ .Content }}{{ end }}{{ end }}',
     ["content", "messages", "role", "toolname"]),
])
def test_template_vars_and_appended_response(source: str, expected: list[str]) -> None:
    assert sorted(OllamaTemplate(source).vars | {"response"} if "messages" not in expected
                  else OllamaTemplate(source).vars) == expected
    if "messages" not in expected and "{{ .Response }}" not in source:
        assert OllamaTemplate(source).execute(to_messages([{"role": "user", "content": "p"},
                                                           {"role": "assistant", "content": "r"}])).endswith("r")


@pytest.mark.parametrize("msgs, system, contents", [
    ([("user", "Hello"), ("user", "How are you?")], "", ["Hello\n\nHow are you?"]),
    ([("tool", "sunny"), ("tool", "72F")], "", ["sunny", "72F"]),
    ([("system", "a"), ("system", "b"), ("user", "u")], "a\n\nb", ["a\n\nb", "u"]),
])
def test_collate_merges_runs_except_tool(msgs: list[tuple[str, str]], system: str, contents: list[str]) -> None:
    got_system, collated = collate(to_messages([{"role": r, "content": c} for r, c in msgs]))
    assert got_system == system
    assert [m.Content for m in collated] == contents


TOOL_HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "",
     "tool_calls": [{"function": {"name": "get_weather", "arguments": {"unit": "c", "city": "Paris"}}}]},
    {"role": "tool", "content": "18C", "tool_name": "get_weather"},
]
QWEN_TOOLS_SYSTEM = (
    "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    '{"type": "function", "function": {"name":"get_weather","description":"Weather for a city","parameters":'
    '{"type":"object","required":["city"],"properties":{"city":{"type":"string","description":"City name"},'
    '"unit":{"type":"string","enum":["c","f"]}}}}}\n</tools>\n\n'
    "For each function call, return a json object with function name and arguments within <tool_call></tool_call> "
    'XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
)


def test_qwen25_tools_and_tool_history() -> None:
    tmpl = parse_ollama_template(template_text("qwen2.5.gotmpl"))
    got = tmpl.execute(to_messages(TOOL_HISTORY), tools=to_tools([WEATHER_TOOL]))
    assert got == QWEN_TOOLS_SYSTEM + (
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"unit":"c","city":"Paris"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\n18C\n</tool_response><|im_end|>\n<|im_start|>assistant\n")
    assert tmpl.tool_call_tag() == "<tool_call>"
    fim = tmpl.execute([], prompt="def f(", suffix="  return 1")
    assert fim == "<|fim_prefix|>def f(<|fim_suffix|>  return 1<|fim_middle|>"


def test_llama31_tools_in_last_user_turn() -> None:
    tmpl = parse_ollama_template(template_text("llama3.1-tools.gotmpl"))
    got = tmpl.execute(to_messages(TOOL_HISTORY[:2]), tools=to_tools([WEATHER_TOOL, TIME_TOOL]))
    assert got.endswith(
        "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}. "
        "Do not use variables.\n\n"
        '{"type":"function","function":{"name":"get_weather","description":"Weather for a city","parameters":'
        '{"type":"object","required":["city"],"properties":{"city":{"type":"string","description":"City name"},'
        '"unit":{"type":"string","enum":["c","f"]}}}}}\n'
        '{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}}\n\n'
        "Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    history = tmpl.execute(to_messages(TOOL_HISTORY), tools=to_tools([WEATHER_TOOL]))
    assert ('<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": '
            '{"unit":"c","city":"Paris"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n18C<|eot_id|>'
            "<|start_header_id|>assistant<|end_header_id|>\n\n") in history
    assert tmpl.tool_call_tag() == "{"


def test_mistral_tools_print_the_tools_list_as_json() -> None:
    tmpl = parse_ollama_template(template_text("mistral-tools.gotmpl"))
    got = tmpl.execute(to_messages(TOOL_HISTORY[:2]), tools=to_tools([TIME_TOOL]))
    assert got == ('[AVAILABLE_TOOLS] [{"type":"function","function":{"name":"get_time","parameters":'
                   '{"type":"object","properties":{}}}}][/AVAILABLE_TOOLS][INST] Be brief.\n\nWeather in Paris?[/INST]')
    assert tmpl.tool_call_tag() == "[TOOL_CALLS] ["


@pytest.mark.parametrize("think, set_, tail", [
    (True, True, "Weather in Paris? /think<|im_end|>\n<|im_start|>assistant\n"),
    (False, True, "Weather in Paris? /no_think<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"),
    (False, False, "Weather in Paris?<|im_end|>\n<|im_start|>assistant\n"),
])
def test_qwen3_thinking_switch(think: bool, set_: bool, tail: str) -> None:
    tmpl = parse_ollama_template(template_text("qwen3.gotmpl"))
    got = tmpl.execute(to_messages(TOOL_HISTORY[1:2]), think=think, is_think_set=set_)
    assert got == "<|im_start|>user\n" + tail
    assert tmpl.thinking_tags() == ("<think>", "</think>")


def test_qwen3_keeps_thinking_of_the_current_turn_only() -> None:
    tmpl = parse_ollama_template(template_text("qwen3.gotmpl"))
    msgs = to_messages([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "thinking": "old"},
                        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d", "thinking": "new"}])
    got = tmpl.execute(msgs, think=True, is_think_set=True)
    assert "old" not in got
    assert got.endswith("<|im_start|>assistant\n<think>new</think>\nd")


@pytest.mark.parametrize("name, tags", [
    ("qwen3.gotmpl", ("<think>", "</think>")),
    ("qwen2.5.gotmpl", ("", "")),
    ("chatml.gotmpl", ("", "")),
])
def test_inferred_thinking_tags(name: str, tags: tuple[str, str]) -> None:
    assert parse_ollama_template(template_text(name)).thinking_tags() == tags


def test_tool_call_arguments_and_properties_keep_client_order() -> None:
    tmpl = OllamaTemplate("{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Arguments }}|{{ json .Function }}"
                          "{{ end }}{{ end }}{{ range .Tools }}|{{ range $k, $v := .Function.Parameters.Properties }}"
                          "{{ $k }}:{{ $v.Type }};{{ end }}{{ end }}")
    msgs = to_messages([{"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "f", "arguments": {"z": 1, "a": {"y": 2, "b": 3}}}}]}])
    assert tmpl.execute(msgs, tools=to_tools([WEATHER_TOOL])) == (
        '{"z":1,"a":{"b":3,"y":2}}|{"index":0,"name":"f","arguments":{"z":1,"a":{"b":3,"y":2}}}'
        "|city:string;unit:string;")


def test_ranging_over_arguments_goes_in_key_order_like_a_go_map() -> None:
    tmpl = OllamaTemplate("{{ range .Messages }}{{ range .ToolCalls }}{{ range $k, $v := .Function.Arguments }}"
                          "{{ $k }}={{ $v }};{{ end }}{{ end }}{{ end }}")
    msgs = to_messages([{"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "f", "arguments": {"z": 1, "a": [1, 2], "m": {"k": "v"}}}}]}])
    assert tmpl.execute(msgs) == "a=[1 2];m=map[k:v];z=1;"


COMMAND_R_TOOLS_SINGLE = (
    "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|># Safety Preamble\nThe instructions in this section override those in "
    "the task description and style guide sections. Don't answer questions that are harmful or immoral.\n\n"
    "# System Preamble\n## Basic Rules\nYou are a powerful conversational AI trained by Cohere to help people. You "
    "are augmented by a number of tools, and your job is to use and consume the output of these tools to best help "
    "the user. You will see a conversation history between yourself and a user, ending with an utterance from the "
    "user. You will then see a specific instruction instructing you what kind of response to generate. When you "
    "answer the user's requests, you cite your sources in your answers, according to those instructions.\n\n\n\n"
    "## Available Tools\nHere is a list of tools that you have available to you:\n\n```python\n"
    "def get_weather(location: string, unit: string, ) -> List[Dict]:\n"
    "    '''Get current weather information for a location\n\n    Args:\n"
    "        location (string): The city and state, e.g. San Francisco, CA\n"
    "        unit (string): The unit of temperature to use\n    '''\n    pass\n```"
    "<|END_OF_TURN_TOKEN|><|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>\n")


def test_command_r_ranges_over_properties() -> None:
    """Ollama's template/testdata/command-r.gotmpl/tools-single."""
    tool = {"type": "function", "function": {
        "name": "get_weather", "description": "Get current weather information for a location",
        "parameters": {"type": "object", "required": ["location"], "properties": {
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"],
                     "description": "The unit of temperature to use"},
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}}}}}
    tmpl = parse_ollama_template(template_text("command-r.gotmpl"))
    assert tmpl.execute([], tools=to_tools([tool])) == COMMAND_R_TOOLS_SINGLE


@pytest.mark.parametrize("message, expected", [
    ({"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"location": "San Francisco, CA"}}}]},
     "<｜Assistant｜>\n<｜tool▁calls▁begin｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
     '{"location":"San Francisco, CA"}\n```<｜tool▁call▁end｜>\n<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'),
    ({"role": "tool", "content": '{"temperature": 22, "condition": "Sunny", "humidity": 45, "wind_speed": 10}'},
     '\n<｜tool▁output▁begin｜>{"temperature": 22, "condition": "Sunny", "humidity": 45, "wind_speed": 10}'
     "<｜tool▁output▁end｜>\n<｜Assistant｜>"),
])
def test_deepseek_tool_call_and_result(message: dict[str, Any], expected: str) -> None:
    """Ollama's template/testdata/deepseek.gotmpl/tools-single-call and tools-single-result."""
    assert parse_ollama_template(template_text("deepseek.gotmpl")).execute(to_messages([message])) == expected


def test_argument_numbers_are_go_float64s() -> None:
    """Go decodes JSON numbers into float64: fmt prints big ones in e-notation, json does not."""
    tmpl = OllamaTemplate("{{ range .Messages }}{{ range .ToolCalls }}{{ range $k, $v := .Function.Arguments }}"
                          "{{ $v }} {{ end }}{{ .Function.Arguments }}{{ end }}{{ end }}")
    msgs = to_messages([{"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "f", "arguments": {"big": 12345678, "small": 22, "ratio": 0.5, "ok": True}}}]}])
    assert tmpl.execute(msgs) == '1.2345678e+07 true 0.5 22 {"big":12345678,"small":22,"ratio":0.5,"ok":true}'
