"""Cancellation, asyncio consumers, decode failures and shutdown."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from pyllama import _native
from pyllama.engine import (
    Chunk,
    Done,
    Engine,
    EngineClosedError,
    EngineError,
    Failure,
    GenerateRequest,
    RequestHandle,
    SamplingOptions,
)
from pyllama.engine.loop import EngineLoop

from engineutil import collect, greedy


@pytest.fixture
def engine1(engine_model: _native.Model) -> Iterator[Engine]:
    """One slot, so a second request has to wait."""
    with Engine(engine_model, n_ctx=512, n_parallel=1, n_batch=128, n_threads=1) as engine:
        yield engine


def _endless(engine: Engine, eog_ban: dict[int, float]) -> RequestHandle:
    return engine.submit("Once upon a time", greedy(num_predict=-1, logit_bias=eog_ban))


def test_cancel_frees_the_slot_for_a_queued_request(engine1: Engine, eog_ban: dict[int, float]) -> None:
    running = _endless(engine1, eog_ban)
    assert isinstance(running.get(timeout=30), Chunk)
    queued = engine1.submit("The capital of France is", greedy(num_predict=3))
    with pytest.raises(TimeoutError):
        queued.get(timeout=0.3)  # the only slot is busy: nothing yet
    running.cancel()
    events = list(running)
    assert isinstance(events[-1], Failure) and events[-1].kind == "cancelled"
    _, done = collect(queued)
    assert done.eval_count == 3


def test_cancel_while_queued(engine1: Engine, eog_ban: dict[int, float]) -> None:
    running = _endless(engine1, eog_ban)
    queued = engine1.submit("Hello", greedy(num_predict=3))
    queued.cancel()
    assert [type(e) for e in queued] == [Failure]
    running.cancel()
    with pytest.raises(EngineError, match="cancelled"):
        running.result(timeout=30)


def test_consumer_leaving_cancels(engine1: Engine, eog_ban: dict[int, float]) -> None:
    running = _endless(engine1, eog_ban)
    for event in running:
        assert isinstance(event, Chunk)
        break  # closing the iterator cancels the request
    assert running.cancelled
    assert engine1.generate("The capital of France is", greedy(num_predict=2)).done.eval_count == 2


def test_async_iteration_and_task_cancellation(engine1: Engine, eog_ban: dict[int, float]) -> None:
    async def main() -> None:
        handle = engine1.submit("The capital of France is", greedy(num_predict=5))
        events = [event async for event in handle]
        assert isinstance(events[-1], Done)
        assert sum(len(e.tokens) for e in events if isinstance(e, Chunk)) == 5
        assert (await engine1.submit("Hi", greedy(num_predict=2)).aresult()).done.eval_count == 2

        endless = _endless(engine1, eog_ban)
        started = asyncio.Event()

        async def consume() -> None:
            async for _ in endless:
                started.set()

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await task
        assert endless.cancelled

    asyncio.run(main())
    assert engine1.generate("Hello", greedy(num_predict=2)).done.eval_count == 2


class _FailingLoop:
    """Makes the next decodes of an engine's loop raise."""

    def __init__(self, loop: EngineLoop, errors: list[Exception]) -> None:
        self.loop, self.errors = loop, errors
        self.real = loop.decode

    def __call__(self, batch: _native.Batch) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.real(batch)


def test_decode_error_fails_the_batch_not_the_engine(engine2: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    loop = engine2._loop
    monkeypatch.setattr(loop, "decode", _FailingLoop(loop, [_native.DecodeError("boom", -3)]))
    with pytest.raises(EngineError, match="decode failed: boom") as info:
        engine2.generate("The capital of France is", greedy(num_predict=3))
    assert info.value.kind == "decode"
    assert engine2.generate("The capital of France is", greedy(num_predict=3)).done.eval_count == 3


def test_kv_cache_full_fails_only_the_slot_that_does_not_fit(engine2: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    loop = engine2._loop
    real = loop.decode
    state = {"calls": 0}

    def decode(batch: _native.Batch) -> None:
        state["calls"] += 1
        seqs = {batch.seq_ids(i)[0] for i in range(len(batch))}
        if len(batch) > 1 and 1 in seqs and state["calls"] < 50:
            raise _native.KVCacheFullError("no room", 1)
        real(batch)

    first = engine2.submit("Once upon a time", greedy(num_predict=20))
    assert isinstance(first.get(timeout=30), Chunk)  # slot 0 generating
    monkeypatch.setattr(loop, "decode", decode)
    second = engine2.submit("A different prompt entirely", greedy(num_predict=3))
    with pytest.raises(EngineError, match="context is full") as info:
        second.result(timeout=60)
    assert info.value.kind == "context"
    assert first.result(timeout=60).done.done_reason == "length"


def test_really_full_kv_cells_end_only_that_slot(engine_model: _native.Model, eog_ban: dict[int, float]) -> None:
    """The test above without the fake: four slots of 256 KV cells, all
    generating at once. Two, with shifting off, use every cell of their
    sequence and end there with "length"; the other two shift past their
    windows and run to num_predict, unaffected."""
    with Engine(engine_model, n_ctx=4 * 256, n_parallel=4, n_batch=128, n_threads=1) as engine:
        assert engine.n_ctx_slot == 256
        prompts = ["Count slowly: one, two, three,", "List the planets:", "The alphabet is a, b, c,", "Say hello"]
        lengths = [len(engine.tokenize(p)) for p in prompts]
        handles = [engine.submit(GenerateRequest(prompt=p, shift=i >= 2, options=SamplingOptions(
            temperature=0, num_predict=270, logit_bias=eog_ban))) for i, p in enumerate(prompts)]
        results = [collect(h) for h in handles]
        for i, (chunks, done) in enumerate(results):
            assert done.done_reason == "length"
            if i < 2:
                # Every cell holds a token; the last sampled token is sent but never decoded.
                assert done.eval_count == 256 - lengths[i] + 1, (i, done)
            else:
                assert done.eval_count == 270 and sum(len(c.tokens) for c in chunks) == 270
        # llama.cpp agrees: the two sequences that ended are full to the last position.
        assert [engine.ctx.seq_pos_max(s) for s in range(4)].count(255) >= 2


def test_close_ends_pending_requests(engine_model: _native.Model, eog_ban: dict[int, float]) -> None:
    engine = Engine(engine_model, n_ctx=256, n_parallel=1, n_threads=1)
    with pytest.raises(EngineClosedError, match="not running"):
        engine.submit("hi")
    engine.start()
    running = _endless(engine, eog_ban)
    queued = engine.submit(GenerateRequest(prompt="hi", options=SamplingOptions(num_predict=2)))
    assert isinstance(running.get(timeout=30), Chunk)
    engine.close()
    for handle in (running, queued):
        final = list(handle)[-1]
        assert isinstance(final, Failure) and final.kind == "closed"
    with pytest.raises(EngineClosedError):
        engine.submit("hi")


def test_dropped_engine_stops_its_thread(engine_model: _native.Model) -> None:
    engine = Engine(engine_model, n_ctx=256, n_parallel=1, n_threads=1).start()
    assert engine.generate("Hi", greedy(num_predict=1)).done.eval_count == 1
    thread = engine._thread
    assert thread is not None
    del engine
    gc.collect()
    thread.join(30)
    assert not thread.is_alive()
