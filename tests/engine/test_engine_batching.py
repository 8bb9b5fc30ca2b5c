"""Continuous batching: concurrent == sequential, long prompts do not stall
running streams, and cached prefixes are reused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pyllama import _native
from pyllama.engine import Chunk, Done, Engine, GenerateRequest, RequestHandle, SamplingOptions
from pyllama.engine.slots import common_prefix

from engineutil import collect, greedy

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "The three primary colors are",
]
NEAR_TIE = 1e-3


@pytest.fixture(scope="module")
def engine4(engine_model: _native.Model) -> Iterator[Engine]:
    with Engine(engine_model, n_ctx=1024, n_parallel=4, n_batch=256, n_threads=1) as engine:
        yield engine


def _request(prompt: str, n: int) -> GenerateRequest:
    return GenerateRequest(prompt=prompt, options=SamplingOptions(temperature=0, num_predict=n), top_logprobs=2)


def test_concurrent_requests_match_sequential_ones(engine4: Engine, eog_ban: dict[int, float]) -> None:
    alone = [collect(engine4.submit(_request(p, 24)))[0] for p in PROMPTS]
    handles = [engine4.submit(_request(p, 24)) for p in PROMPTS]
    together = [collect(h)[0] for h in handles]
    for solo, mixed in zip(alone, together):
        solo_lp = [lp for c in solo for lp in c.logprobs]
        mixed_tokens = [t for c in mixed for t in c.tokens]
        assert len(solo_lp) == len(mixed_tokens)
        for lp, tok in zip(solo_lp, mixed_tokens):
            if lp.token != tok:
                # Only a near-tie may flip: the top two logits almost equal.
                gap = lp.top[0].logprob - lp.top[1].logprob
                assert gap < NEAR_TIE, (lp, tok)
                break


def _consume(handle: RequestHandle, log: list[tuple[float, int]]) -> None:
    for event in handle:
        if isinstance(event, Chunk) and event.tokens:
            log.append((time.perf_counter(), len(event.tokens)))


def test_long_prompt_does_not_stall_running_streams(engine_model: _native.Model, eog_ban: dict[int, float]) -> None:
    with Engine(engine_model, n_ctx=3 * 2048, n_parallel=3, n_batch=256, n_threads=1) as engine:
        logs: list[list[tuple[float, int]]] = [[], []]
        streams = [engine.submit(p, greedy(num_predict=500, logit_bias=eog_ban)) for p in PROMPTS[:2]]
        threads = [threading.Thread(target=_consume, args=(h, log)) for h, log in zip(streams, logs)]
        for t in threads:
            t.start()
        while min(len(log) for log in logs) < 2:
            time.sleep(0.01)
        long_prompt = " ".join(f"Item {i} is a {['red', 'green', 'blue'][i % 3]} box." for i in range(160))
        n_long = len(engine.tokenize(long_prompt))
        assert 1400 < n_long < 2000
        submitted = time.perf_counter()
        long = engine.submit(long_prompt, greedy(num_predict=3))
        first = None
        for event in long:
            if isinstance(event, Chunk) and event.tokens and first is None:
                first = time.perf_counter()
            if isinstance(event, Done):
                assert event.prompt_eval_count == n_long
        for h in streams:
            h.cancel()
        for t in threads:
            t.join()
        assert first is not None
        # The prompt takes ceil(n_long / 254) = 6 steps and every step also
        # carries one token per stream. Stalling (the whole prompt in one
        # decode) would leave them at most one token in this window; allow
        # the consumer threads to see the last couple of tokens late.
        for log in logs:
            during = sum(n for at, n in log if submitted <= at <= first)
            assert during >= n_long // 256 - 2, (during, n_long)


def test_second_request_evaluates_only_the_new_tokens(engine2: Engine) -> None:
    shared = "You are a helpful assistant. " + " ".join(f"Fact {i}: the sky is blue." for i in range(30))
    first_prompt = shared + "\nQuestion: what colour is the sky?"
    second_prompt = shared + "\nQuestion: what colour is grass?"
    _, first = collect(engine2.submit(first_prompt, greedy(num_predict=4)))
    assert first.prompt_eval_count == len(engine2.tokenize(first_prompt)) - first.cached_tokens
    _, second = collect(engine2.submit(second_prompt, greedy(num_predict=4)))
    a, b = engine2.tokenize(first_prompt), engine2.tokenize(second_prompt)
    n_common = common_prefix(a, b)
    assert n_common > 200
    assert second.cached_tokens == n_common
    assert second.prompt_eval_count == len(b) - n_common
    # The same prompt again re-evaluates just its last token (its logits are needed).
    _, again = collect(engine2.submit(second_prompt, greedy(num_predict=4)))
    assert again.prompt_eval_count == 1


def test_slot_choice_prefers_the_longest_cached_prefix(engine_model: _native.Model) -> None:
    with Engine(engine_model, n_ctx=1024, n_parallel=2, n_batch=256, n_threads=1) as engine:
        a = "Cats are small furry animals. " * 10
        b = "Dogs bark at the mailman. " * 10
        collect(engine.submit(a, greedy(num_predict=2)))
        collect(engine.submit(b, greedy(num_predict=2)))  # nothing in common: the least recently used slot
        # Each prompt again finds its own slot's cache, whichever was used last.
        for prompt in (a, b, a):
            _, done = collect(engine.submit(prompt, greedy(num_predict=2)))
            assert done.prompt_eval_count == 1, done
