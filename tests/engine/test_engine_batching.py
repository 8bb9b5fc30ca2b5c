"""Continuous batching: concurrent == sequential, long prompts do not stall
running streams, and cached prefixes are reused."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from pyllama import _native
from pyllama.engine import Chunk, Done, Engine, Event, GenerateRequest, SamplingOptions

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


def test_long_prompt_does_not_stall_running_streams(engine_model: _native.Model, eog_ban: dict[int, float]) -> None:
    """While a long prompt is evaluated in n_batch-sized pieces, every step
    also carries one token for each running stream. Counted in engine steps,
    not seconds: the loop thread logs the end of each step and hands over
    each event as it happens (``forward``), so the log is in engine order
    however busy the machine is."""
    with Engine(engine_model, n_ctx=3 * 2048, n_parallel=3, n_batch=256, n_threads=1) as engine:
        log: list[tuple[str, int]] = []
        generating = {name: threading.Event() for name in ("a", "b")}
        finished = {name: threading.Event() for name in ("a", "b", "long")}
        finals: dict[str, Event] = {}

        def sink(name: str) -> Callable[[Event], None]:
            def put(event: Event) -> None:
                if isinstance(event, Chunk):
                    if event.tokens:
                        log.append((name, len(event.tokens)))
                        if name in generating:
                            generating[name].set()
                else:
                    finals[name] = event
                    finished[name].set()
            return put

        engine.call_after_each_step(lambda: log.append(("step", 0)))
        streams = [engine.submit(p, greedy(num_predict=500, logit_bias=eog_ban)) for p in PROMPTS[:2]]
        for name, handle in zip("ab", streams):
            handle.forward(sink(name))
        for event in generating.values():
            assert event.wait(120)
        long_prompt = " ".join(f"Item {i} is a {['red', 'green', 'blue'][i % 3]} box." for i in range(160))
        n_long = len(engine.tokenize(long_prompt))
        assert 1400 < n_long < 2000
        log.append(("submitted", 0))  # before the loop can see the request
        long = engine.submit(long_prompt, greedy(num_predict=3))
        long.forward(sink("long"))
        assert finished["long"].wait(300)
        for handle in streams:
            handle.cancel()
        for name in "ab":
            assert finished[name].wait(60)
        engine.call_after_each_step(None)
    done = finals["long"]
    assert isinstance(done, Done) and done.prompt_eval_count == n_long
    start = log.index(("submitted", 0))
    first = next(i for i, (who, _) in enumerate(log) if who == "long")
    window = log[start + 1:first]
    # Each step's batch holds one token per stream and 254 prompt tokens, so
    # the prompt needs n_prefill steps; the long request's first token is
    # sampled in the last of them, after the streams' tokens of that step.
    n_prefill = -(-n_long // (256 - 2))
    assert sum(1 for who, _ in window if who == "step") >= n_prefill - 1, window
    for name in "ab":
        assert sum(n for who, n in window if who == name) >= n_prefill, (name, n_prefill, window)


def test_second_request_evaluates_only_the_new_tokens(engine2: Engine) -> None:
    shared = "You are a helpful assistant. " + " ".join(f"Fact {i}: the sky is blue." for i in range(30))
    first_prompt = shared + "\nQuestion: what colour is the sky?"
    second_prompt = shared + "\nQuestion: what colour is grass?"
    _, first = collect(engine2.submit(first_prompt, greedy(num_predict=4)))
    assert first.prompt_eval_count == len(engine2.tokenize(first_prompt)) - first.cached_tokens
    _, second = collect(engine2.submit(second_prompt, greedy(num_predict=4)))
    a, b = engine2.tokenize(first_prompt), engine2.tokenize(second_prompt)
    # The prompts part at " the" / " grass": everything before is shared, token for token.
    n_common = len(engine2.tokenize(shared + "\nQuestion: what colour is"))
    assert a[:n_common] == b[:n_common] and a[n_common] != b[n_common]
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
