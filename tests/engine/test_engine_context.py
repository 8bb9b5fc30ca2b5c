"""Context limits: shifting past the slot's size, prompt truncation, and
ending with "length" when shifting is not allowed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pyllama import _native
from pyllama.engine import Engine, GenerateRequest, InvalidRequestError, SamplingOptions

from engineutil import collect, greedy


@pytest.fixture(scope="module")
def small(engine_model: _native.Model) -> Iterator[Engine]:
    """Two slots of 256 tokens each."""
    with Engine(engine_model, n_ctx=512, n_parallel=2, n_batch=128, n_threads=1) as engine:
        assert engine.n_ctx_slot == 256
        yield engine


def test_context_shift_continues_past_the_slot(small: Engine, eog_ban: dict[int, float]) -> None:
    chunks, done = collect(small.submit("Count slowly: one, two, three,", greedy(num_predict=400, logit_bias=eog_ban)))
    assert sum(len(c.tokens) for c in chunks) == 400
    assert done.eval_count == 400 and done.done_reason == "length"
    prompt = small.tokenize("Count slowly: one, two, three,")
    assert done.context == prompt + [t for c in chunks for t in c.tokens]


@pytest.mark.parametrize("how", ["shift_off", "fill_context"])
def test_without_shift_generation_ends_at_the_slot_end(small: Engine, eog_ban: dict[int, float], how: str) -> None:
    prompt = "Count slowly: one, two, three,"
    n_prompt = len(small.tokenize(prompt))
    if how == "shift_off":
        request = GenerateRequest(prompt=prompt, shift=False,
                                  options=SamplingOptions(temperature=0, num_predict=400, logit_bias=eog_ban))
    else:
        request = GenerateRequest(prompt=prompt, options=SamplingOptions(temperature=0, num_predict=-2, logit_bias=eog_ban))
    _, done = collect(small.submit(request))
    assert done.done_reason == "length"
    # Every cell holds a token; the last sampled token is sent but never decoded.
    assert done.eval_count == small.n_ctx_slot - n_prompt + 1


def test_long_prompt_is_truncated_keeping_num_keep(small: Engine) -> None:
    words = " ".join(f"w{i}" for i in range(300))
    tokens = small.tokenize(words)
    assert len(tokens) > 256
    _, done = collect(small.submit(tokens, greedy(num_predict=2, num_keep=5)))
    assert done.truncated
    assert done.prompt_eval_count + done.cached_tokens == 256
    kept = done.context[:256]
    assert kept[:5] == tokens[:5]  # num_keep from the front (no BOS in this vocab)
    assert kept[5:] == tokens[len(tokens) - 251:]  # then the newest tokens


def test_truncate_off_rejects_a_long_prompt(small: Engine) -> None:
    tokens = small.tokenize(" ".join(f"w{i}" for i in range(300)))
    with pytest.raises(InvalidRequestError, match="exceeds the context length"):
        small.submit(GenerateRequest(prompt=tokens, truncate=False))
