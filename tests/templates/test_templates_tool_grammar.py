"""From a Jinja template's chat params to the engine's sampling options:
llama.cpp's tool-call grammar is used lazily, with its triggers, when a
request has tools and no ``format`` of its own."""

from __future__ import annotations

from typing import Any

from templatesutil import WEATHER_TOOL

from pyllama.engine import GrammarTrigger
from pyllama.engine.sampling import build_sampler, lazy_grammar_triggers
from pyllama.server.checks import sampling_options
from pyllama.templates import build_prompt

ASK = [{"role": "user", "content": "Weather in Paris?"}]


def test_tool_grammar_reaches_the_sampling_options(jinja_templates: Any, vocab_model: Any) -> None:
    rendered = build_prompt(jinja_templates("NousResearch-Hermes-3-Llama-3.1-8B-tool_use"), ASK, tools=[WEATHER_TOOL])
    opts = sampling_options({"temperature": 0}, stops=rendered.additional_stops, rendered=rendered)
    assert opts.grammar == rendered.grammar and "tool-call" in opts.grammar
    assert opts.grammar_lazy is True
    assert opts.grammar_triggers == [GrammarTrigger("word", "<tool_call>\n", -1)]
    assert opts.preserved_tokens == ["<tool_call>", "</tool_call>"]
    # "<tool_call>\n" is several tokens in SmolLM2's vocabulary: a literal pattern, no token trigger
    assert lazy_grammar_triggers(vocab_model, opts.grammar_triggers, opts.preserved_tokens) == (["<tool_call>\n"], [])
    assert build_sampler(vocab_model, opts, 512).names == ["grammar", "greedy"]


def test_format_wins_over_the_tool_grammar(jinja_templates: Any) -> None:
    rendered = build_prompt(jinja_templates("NousResearch-Hermes-3-Llama-3.1-8B-tool_use"), ASK, tools=[WEATHER_TOOL])
    opts = sampling_options({}, grammar='root ::= "{}"', rendered=rendered)
    assert opts.grammar == 'root ::= "{}"' and not opts.grammar_lazy and opts.grammar_triggers == []
    also = sampling_options({"grammar": 'root ::= "x"'}, rendered=rendered)  # a grammar option wins too
    assert also.grammar == 'root ::= "x"' and not also.grammar_lazy


def test_no_tools_or_no_tool_format_means_no_grammar(jinja_templates: Any) -> None:
    hermes = build_prompt(jinja_templates("NousResearch-Hermes-3-Llama-3.1-8B-tool_use"), ASK)
    qwen = build_prompt(jinja_templates("Qwen-Qwen2.5-7B-Instruct"), ASK)
    for rendered in (hermes, qwen):
        opts = sampling_options({}, rendered=rendered)
        assert opts.grammar == "" and not opts.grammar_lazy and opts.grammar_triggers == []
