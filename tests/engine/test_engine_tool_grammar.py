"""Lazy grammars (llama.cpp's tool-call grammars): trigger conversion as
llama-server does it, the sampler chain, and what a trigger does to output."""

from __future__ import annotations

import msgspec
import pytest

from pyllama import _native
from pyllama.engine import (
    Engine,
    GenerateRequest,
    GrammarTrigger,
    InvalidRequestError,
    SamplingOptions,
    validate_options,
)
from pyllama.engine.sampling import build_sampler, lazy_grammar_triggers, regex_escape

from engineutil import greedy

PROMPT = "The capital of France is"


@pytest.mark.parametrize(("text", "escaped"), [
    ("<tool_call>\n", "<tool_call>\n"),
    ("[TOOL_CALLS]", r"\[TOOL_CALLS\]"),
    ("a.b*c+d?e^f$g|h(i)j{k}l\\m", r"a\.b\*c\+d\?e\^f\$g\|h\(i\)j\{k\}l\\m"),
    ("<|python_tag|> x-y #", r"<\|python_tag\|> x-y #"),  # no escapes std::regex might not read
])
def test_regex_escape_matches_llama_cpp(text: str, escaped: str) -> None:
    assert regex_escape(text) == escaped


def test_triggers_convert_as_llama_server(engine_model: _native.Model) -> None:
    im_start = int(engine_model.tokenize("<|im_start|>", add_special=False, parse_special=True)[0])
    im_end = int(engine_model.tokenize("<|im_end|>", add_special=False, parse_special=True)[0])
    triggers = [
        GrammarTrigger("word", "<tool_call>\n"),              # several tokens: an escaped pattern
        GrammarTrigger("word", "<|im_start|>"),               # one preserved token: a token trigger
        GrammarTrigger("word", "<|im_end|>"),                 # one token, not preserved: stays a pattern
        GrammarTrigger("pattern", r"\s*(\{\"name\")"),        # searched as is
        GrammarTrigger("pattern_full", r"(?:foo)?(\[)"),      # anchored to the whole output
        GrammarTrigger("pattern_full", r"^x$"),               # already anchored
        GrammarTrigger("pattern_full", ""),
        GrammarTrigger("token", "", 7),                       # an id
        GrammarTrigger("token", "<|im_end|>"),                # no id: its text's token
    ]
    patterns, tokens = lazy_grammar_triggers(engine_model, triggers, ["<|im_start|>"])
    assert patterns == ["<tool_call>\n", r"<\|im_end\|>", r"\s*(\{\"name\")", r"^(?:foo)?(\[)$", "^x$", "^$"]
    assert tokens == [im_start, 7, im_end]
    with pytest.raises(ValueError, match="unknown grammar trigger kind"):
        lazy_grammar_triggers(engine_model, [GrammarTrigger("regex", "x")])


def test_lazy_grammar_in_the_chain(engine_model: _native.Model) -> None:
    lazy = SamplingOptions(temperature=0, grammar='root ::= "{" [a-z]* "}"', grammar_lazy=True,
                           grammar_triggers=[GrammarTrigger("word", "{")])
    assert build_sampler(engine_model, lazy, 256).names == ["grammar", "greedy"]
    # a lazy flag without a grammar is nothing; without triggers it is an error (as llama-server)
    assert build_sampler(engine_model, SamplingOptions(temperature=0, grammar_lazy=True), 256).names == ["greedy"]
    with pytest.raises(InvalidRequestError, match="lazy grammar needs at least one trigger"):
        validate_options(msgspec.structs.replace(lazy, grammar_triggers=[]))
    with pytest.raises(InvalidRequestError, match="unknown grammar trigger kind"):
        validate_options(msgspec.structs.replace(lazy, grammar_triggers=[GrammarTrigger("regex", "{")]))


def test_options_cross_the_runner_socket() -> None:
    request = GenerateRequest(prompt="hi", options=SamplingOptions(
        grammar="root ::= x", grammar_lazy=True, grammar_triggers=[GrammarTrigger("token", "<x>", 5)],
        preserved_tokens=["<x>"]))
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(request), type=GenerateRequest) == request
    # an encoding without the new fields (an older peer) still decodes, to the defaults
    old = msgspec.msgpack.encode(GenerateRequest(prompt="hi", options=SamplingOptions(temperature=0)))
    assert msgspec.msgpack.decode(old, type=GenerateRequest).options.grammar_triggers == []


def test_untriggered_lazy_grammar_changes_nothing(engine2: Engine) -> None:
    free = engine2.generate(PROMPT, greedy(num_predict=8))
    lazy = engine2.generate(PROMPT, SamplingOptions(
        temperature=0, num_predict=8, grammar='root ::= "zebra"', grammar_lazy=True,
        grammar_triggers=[GrammarTrigger("word", "zebra")]))
    assert lazy.text == free.text


def test_a_word_trigger_constrains_what_follows(engine2: Engine) -> None:
    free = engine2.generate(PROMPT, greedy(num_predict=8))
    word = free.text.split()[1]  # a word the model writes after some free text
    lazy = engine2.generate(PROMPT, SamplingOptions(
        temperature=0, num_predict=24, grammar=f'root ::= "{word}" " banana split"', grammar_lazy=True,
        grammar_triggers=[GrammarTrigger("word", word)]))
    # free text up to the trigger, then only what the grammar allows, then end of generation
    assert lazy.text == free.text[: free.text.index(word)] + word + " banana split"
    assert lazy.done.done_reason == "stop"


def test_a_token_trigger_constrains_what_follows(engine2: Engine) -> None:
    free = engine2.generate(PROMPT, greedy(num_predict=8))
    tok = free.tokens[2]
    assert tok not in free.tokens[:2]
    piece = engine2.model.token_to_piece(tok).decode()
    head = engine2.model.detokenize(free.tokens[:3])
    lazy = engine2.generate(PROMPT, SamplingOptions(
        temperature=0, num_predict=24, grammar=f'root ::= {msgspec.json.encode(piece).decode()} " ok"',
        grammar_lazy=True, grammar_triggers=[GrammarTrigger("token", piece, tok)]))
    assert lazy.text == head + " ok"
