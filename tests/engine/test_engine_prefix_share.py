"""Cross-slot prefix sharing: a prefix one slot holds (or is evaluating)
is copied into another slot instead of being evaluated again; the output
is what the same requests give without sharing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from pyllama import _native
from pyllama.engine import Engine, GenerateRequest, SamplingOptions
from pyllama.engine.prefix_share import MIN_GAIN, PrefixSharer
from pyllama.engine.slots import Slot

from engineutil import collect

NEAR_TIE = 1e-3
SYSTEM = ("You are a careful assistant for a small bakery. You answer questions about bread, cakes, "
          "opening hours and prices. Keep answers short, friendly and factual. ") * 4
QUESTIONS = ["What time do you open?", "Do you sell rye bread?", "How much is a croissant?",
             "Can I order a birthday cake?"]


def _request(question: str, n: int = 12) -> GenerateRequest:
    return GenerateRequest(prompt=SYSTEM + "\nUser: " + question + "\nAssistant:",
                           options=SamplingOptions(temperature=0, num_predict=n), top_logprobs=2)


def _engine(model: _native.Model, share: bool) -> Engine:
    return Engine(model, n_ctx=4 * 512, n_parallel=4, n_batch=64, n_threads=1, share_prefixes=share)


class _Counter:
    """Counts the tokens the engine hands to llama_decode (the loop's seam)."""

    def __init__(self, engine: Engine) -> None:
        self.tokens = 0
        loop = engine._loop
        inner = loop.decode

        def decode(batch: _native.Batch) -> None:
            self.tokens += len(batch)
            inner(batch)

        loop.decode = decode  # type: ignore[method-assign]


def _same_greedy(a: Sequence[object], b: Sequence[object]) -> None:
    """Token for token equal, except that a near-tie may flip (then the rest differs)."""
    chunks_a, chunks_b = a, b
    lps = [lp for c in chunks_a for lp in c.logprobs]  # type: ignore[attr-defined]
    toks = [t for c in chunks_b for t in c.tokens]  # type: ignore[attr-defined]
    assert len(lps) == len(toks)
    for lp, tok in zip(lps, toks):
        if lp.token != tok:
            assert lp.top[0].logprob - lp.top[1].logprob < NEAR_TIE, (lp, tok)
            break


@pytest.fixture(scope="module")
def unshared(engine_model: _native.Model, eog_ban: dict[int, float]) -> Iterator[list[tuple[list[object], object]]]:
    """The reference: each question alone on an engine that never shares."""
    with _engine(engine_model, share=False) as engine:
        yield [collect(engine.submit(_request(q))) for q in QUESTIONS]  # type: ignore[misc]


def test_requests_arriving_together_evaluate_the_shared_prefix_once(
        engine_model: _native.Model, unshared: list[tuple[list[object], object]]) -> None:
    with _engine(engine_model, share=True) as engine:
        counter = _Counter(engine)
        handles = [engine.submit(_request(q)) for q in QUESTIONS]
        results = [collect(h) for h in handles]
        prompts = [len(engine.tokenize(_request(q).prompt)) for q in QUESTIONS]  # type: ignore[arg-type]
        # A request that arrives when the first one has evaluated all but a little of the
        # shared part copies what is there (waiting would save less than MIN_GAIN tokens).
        shared = min(len(engine.tokenize(SYSTEM)), *prompts) - 2 - MIN_GAIN
        first, *rest = [done for _, done in results]
        assert first.cached_tokens == 0 and first.prompt_eval_count == prompts[0]
        for done, n in zip(rest, prompts[1:]):
            assert done.cached_tokens >= shared and done.prompt_eval_count == n - done.cached_tokens
        assert engine._loop.share.n_copies == len(QUESTIONS) - 1
        # What llama_decode saw: each prompt's unshared part once, plus the generated tokens.
        generated = sum(done.eval_count - 1 for _, done in results)
        assert counter.tokens == sum(done.prompt_eval_count for _, done in results) + generated
        assert counter.tokens < sum(prompts) - (len(QUESTIONS) - 1) * shared + generated + 1
    for (ref_chunks, _), (chunks, _) in zip(unshared, results):
        _same_greedy(ref_chunks, chunks)


def test_a_busy_slot_shares_its_prefix_with_a_new_request(
        engine_model: _native.Model, unshared: list[tuple[list[object], object]]) -> None:
    """The second request arrives while the first is generating: it copies
    the first slot's prefix (not its own slot's, which is empty)."""
    with _engine(engine_model, share=True) as engine:
        first = engine.submit(_request(QUESTIONS[0], n=40))
        first.get()  # its first token: generating now
        second = collect(engine.submit(_request(QUESTIONS[1])))
        collect(first)
        assert second[1].cached_tokens >= len(engine.tokenize(SYSTEM)) - 2
        assert engine._loop.share.n_copies == 1
    _same_greedy(unshared[1][0], second[0])


def test_followers_go_on_alone_when_their_leader_is_cancelled(
        engine_model: _native.Model, unshared: list[tuple[list[object], object]]) -> None:
    with _engine(engine_model, share=True) as engine:
        leader = engine.submit(_request(QUESTIONS[0]))
        followers = [engine.submit(_request(q)) for q in QUESTIONS[1:]]
        steps = {"n": 0}

        def cancel_after_first_step() -> None:
            steps["n"] += 1
            if steps["n"] == 1:
                leader.cancel()

        engine.call_after_each_step(cancel_after_first_step)
        results = [collect(h) for h in followers]
    for (ref_chunks, _), (chunks, _) in zip(unshared[1:], results):
        _same_greedy(ref_chunks, chunks)


def test_only_the_kept_tokens_of_a_shifted_slot_are_shared() -> None:
    class Ctx:
        def __init__(self) -> None:
            self.calls: list[tuple[str, int, int]] = []

        def seq_cp(self, src: int, dst: int) -> None:
            self.calls.append(("cp", src, dst))

        def seq_rm(self, seq: int, p0: int, p1: int) -> bool:
            self.calls.append(("rm", seq, p0))
            return True

    from pyllama.engine.jobs import GenerateJob
    import numpy as np

    slots = [Slot(0, cache=list(range(200))), Slot(1)]
    ctx = Ctx()
    sharer = PrefixSharer(ctx, slots)  # type: ignore[arg-type]
    sharer.shifted(slots[0], 50)
    job = GenerateJob(handle=None, request=None, prompt=np.arange(300, dtype=np.int32), sampler=None,  # type: ignore[arg-type]
                      stream=None, n_keep=0, truncated=False, t_submit=0, order=1)  # type: ignore[arg-type]
    assert sharer.admit(slots[1], job, 0) == 50 and slots[1].cache == list(range(50))
    assert ctx.calls == [("cp", 0, 1), ("rm", 1, 50)]
    sharer.shifted(slots[1], MIN_GAIN - 1)  # too little left to be worth a copy
    slots[0].cache = []
    job2 = GenerateJob(handle=None, request=None, prompt=np.arange(300, dtype=np.int32), sampler=None,  # type: ignore[arg-type]
                       stream=None, n_keep=0, truncated=False, t_submit=0, order=2)  # type: ignore[arg-type]
    assert sharer.admit(slots[0], job2, 0) == 0 and len(ctx.calls) == 2
