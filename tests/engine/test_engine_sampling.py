"""Options -> sampler chains, and what they do to generation."""

from __future__ import annotations

import math

import pytest

from pyllama import _native
from pyllama.engine import Engine, GenerateRequest, InvalidRequestError, SamplingOptions, options_from_mapping
from pyllama.engine.sampling import build_sampler

from engineutil import chat, collect, greedy


@pytest.mark.parametrize(("options", "names"), [
    ({}, ["top-k", "top-p", "temp", "dist"]),
    ({"temperature": 0}, ["greedy"]),
    ({"temperature": 0, "repeat_penalty": 1.1}, ["penalties", "greedy"]),
    ({"mirostat": 1}, ["temp", "mirostat"]),
    ({"mirostat": 2, "top_k": 5}, ["temp", "mirostat-v2"]),
    ({"repeat_penalty": 1.1, "top_k": 0, "typical_p": 0.9, "top_p": 1.0, "min_p": 0.05},
     ["penalties", "typical", "min-p", "temp", "dist"]),
    ({"logit_bias": {"5": -1}, "grammar": 'root ::= "a"', "presence_penalty": 0.5},
     ["logit-bias", "grammar", "penalties", "top-k", "top-p", "temp", "dist"]),
    ({"repeat_last_n": 0, "repeat_penalty": 1.3}, ["top-k", "top-p", "temp", "dist"]),
])
def test_chain_order_follows_llama_cpp(engine_model: _native.Model, options: dict[str, object],
                                       names: list[str]) -> None:
    assert build_sampler(engine_model, options_from_mapping(options), 256).names == names


def test_temperature_zero_is_greedy(engine2: Engine) -> None:
    request = GenerateRequest(prompt=chat(engine2.model, "Name three fruits."), top_logprobs=1,
                              options=SamplingOptions(temperature=0, num_predict=24, top_k=3, top_p=0.5))
    chunks, done = collect(engine2.submit(request))
    logprobs = [lp for c in chunks for lp in c.logprobs]
    assert len(logprobs) >= 8 and len(logprobs) in (done.eval_count, done.eval_count - 1)
    assert all(lp.token == lp.top[0].token for lp in logprobs)  # the argmax of the raw logits


def test_seeded_sampling_is_reproducible(engine2: Engine) -> None:
    prompt = chat(engine2.model, "Write a short poem about rain.")
    options = {"temperature": 1.0, "top_k": 100, "top_p": 0.95, "seed": 1234, "num_predict": 24}
    first = engine2.generate(prompt, options)
    second = engine2.generate(prompt, options)
    assert first.tokens == second.tokens and first.text == second.text
    others = {tuple(engine2.generate(prompt, dict(options, seed=seed)).tokens) for seed in (1, 2, 3)}
    assert len(others | {tuple(first.tokens)}) > 1  # the seed matters


def test_mirostat_and_penalties_generate(engine2: Engine) -> None:
    prompt = chat(engine2.model, "Say something.")
    for options in ({"mirostat": 1, "seed": 3}, {"mirostat": 2, "seed": 3},
                    {"repeat_penalty": 1.3, "frequency_penalty": 0.5, "presence_penalty": 0.5, "seed": 3}):
        result = engine2.generate(prompt, dict(options, num_predict=8))
        assert result.done.eval_count >= 1


def test_logprobs_are_a_distribution(engine2: Engine) -> None:
    request = GenerateRequest(prompt="The capital of France is", logprobs=True, top_logprobs=5,
                              options=SamplingOptions(temperature=0, num_predict=3))
    chunks, _ = collect(engine2.submit(request))
    lp = chunks[0].logprobs[0]
    assert lp.piece == engine2.model.token_to_piece(lp.token)
    assert [t.logprob for t in lp.top] == sorted((t.logprob for t in lp.top), reverse=True)
    assert 0.0 < sum(math.exp(t.logprob) for t in lp.top) <= 1.0 + 1e-6
    no_lp = engine2.generate("The capital of France is", greedy(num_predict=3))
    assert no_lp.logprobs == []


def test_grammar_and_logit_bias(engine2: Engine) -> None:
    prompt = chat(engine2.model, "Is the sky blue? Answer yes or no.")
    answer = engine2.generate(prompt, greedy(num_predict=8, grammar='root ::= ("yes" | "no") "."'))
    assert answer.text in ("yes.", "no.")
    free = engine2.generate("The capital of France is", greedy(num_predict=1))
    banned = engine2.generate("The capital of France is", greedy(num_predict=1, logit_bias={free.tokens[0]: -math.inf}))
    assert banned.tokens[0] != free.tokens[0]


@pytest.mark.parametrize(("options", "message"), [
    ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
    ({"top_k": True}, 'option "top_k" must be of type integer'),
    ({"stop": 5}, 'option "stop" must be of type array'),
    ({"mirostat": 3}, "mirostat must be 0"),
    ({"top_p": 1.5}, "top_p must be between 0 and 1"),
    ({"num_predict": -3}, "num_predict must be"),
    ({"temperature": -1}, "temperature must be >= 0"),
    ({"repeat_penalty": 0}, "repeat_penalty must be > 0"),
    ({"stop": ["", "x"]}, "stop strings must not be empty"),
])
def test_bad_option_values_are_rejected(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        options_from_mapping(options)


def test_unknown_and_null_options_are_ignored() -> None:
    opts = options_from_mapping({"num_ctx": 8192, "whatever": 1, "top_k": None, "seed": 7.9, "stop": "END"})
    assert opts.top_k == 40 and opts.seed == 7 and opts.stop == ["END"]


def test_bad_requests_raise_on_submit(engine2: Engine) -> None:
    with pytest.raises(InvalidRequestError, match="prompt is empty"):
        engine2.submit("", {"temperature": 0})
    with pytest.raises(InvalidRequestError, match="prompt is empty"):
        engine2.submit([])
    with pytest.raises(InvalidRequestError, match="token ids must be in"):
        engine2.submit([1, 10**7])
    with pytest.raises(InvalidRequestError, match="top_logprobs must be between 0 and 20"):
        engine2.submit(GenerateRequest(prompt="hi", top_logprobs=21))
    with pytest.raises(InvalidRequestError, match="logit_bias token"):
        engine2.submit("hi", {"logit_bias": {10**7: 1.0}})
    with pytest.raises(InvalidRequestError, match="grammar"):
        engine2.submit("hi", {"grammar": "root ::= ("})
    with pytest.raises(InvalidRequestError, match="embeddings"):
        engine2.embed(["hi"])
