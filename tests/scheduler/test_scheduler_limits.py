"""Limits: max loaded models (LRU of idle runners, busy ones waited for),
the pending queue (503), memory fit, and reloads for another num_ctx."""

from __future__ import annotations

import asyncio

import pytest

from pyllama.engine import Chunk, Done, GenerateRequest, InvalidRequestError, SamplingOptions, TokenLogprob
from pyllama.scheduler import BUSY_MESSAGE, InsufficientMemoryError, ModelRef, Scheduler, ServerBusyError

from schedutil import complete, drain, request, scheduler, wait_until


def _names(sched: Scheduler) -> set[str]:
    return {m.name for m in sched.ps()}


def test_max_loaded_evicts_least_recently_used(smollm2: ModelRef, gemma: ModelRef, smollm2_alias: ModelRef) -> None:
    async def main() -> None:
        sched = scheduler(max_loaded_models=2)
        try:
            await complete(sched, smollm2, "Hello", 2)
            await complete(sched, gemma, "Hello", 2)
            assert _names(sched) == {"smollm2:latest", "gemma3:270m"}
            await complete(sched, smollm2, "Hi", 2)  # smollm2 is now the most recently used
            await complete(sched, smollm2_alias, "Hello", 2)
            assert _names(sched) == {"smollm2:latest", "smollm2-copy:latest"}
            await complete(sched, gemma, "Hello", 2)
            assert _names(sched) == {"gemma3:270m", "smollm2-copy:latest"}
        finally:
            await sched.close()

    asyncio.run(main())


def test_busy_runner_is_waited_for_not_evicted(smollm2: ModelRef, gemma: ModelRef,
                                               eog_ban: dict[int, float]) -> None:
    async def main() -> None:
        sched = scheduler(max_loaded_models=1)
        try:
            events = await sched.generate(smollm2, request("Once upon a time", 32, logit_bias=eog_ban))
            await events.__anext__()
            other = asyncio.create_task(complete(sched, gemma, "Hello", 2))
            await wait_until(lambda: sched.pending == 1)
            assert not other.done() and _names(sched) == {"smollm2:latest"}
            tokens, final = await drain(events)
            assert isinstance(final, Done) and final.eval_count == 32  # ran to the end
            await other
            assert _names(sched) == {"gemma3:270m"}
        finally:
            await sched.close()

    asyncio.run(main())


def test_queue_overflow_is_server_busy(smollm2: ModelRef, eog_ban: dict[int, float]) -> None:
    async def main() -> None:
        sched = scheduler(max_queue=1, num_parallel=1)
        try:
            running = await sched.generate(smollm2, request("Once upon a time", 32, logit_bias=eog_ban))
            await running.__anext__()
            waiting = asyncio.create_task(complete(sched, smollm2, "Hello", 2))
            await wait_until(lambda: sched.pending == 1)
            with pytest.raises(ServerBusyError) as info:
                await sched.generate(smollm2, request("Hi", 2))
            assert info.value.status_code == 503
            assert info.value.message == BUSY_MESSAGE == \
                "server busy, please try again.  maximum pending requests exceeded"
            await drain(running)
            _, done = await waiting
            assert done.load_duration > 0  # it waited for the slot
            assert sched.pending == 0
        finally:
            await sched.close()

    asyncio.run(main())


def test_model_that_does_not_fit_is_refused_after_evicting_idle_ones(smollm2: ModelRef, gemma: ModelRef) -> None:
    async def main() -> None:
        budget = {"bytes": 1 << 40}
        sched = Scheduler(scheduler().config, n_threads=1, memory_available=lambda: budget["bytes"])
        try:
            await complete(sched, smollm2, "Hello", 2)
            budget["bytes"] = 1 << 20  # 1 MiB free from now on
            with pytest.raises(InsufficientMemoryError, match=r"model requires more system memory \(.* GiB\) "
                                                              r"than is available \(0.0 GiB\)"):
                await sched.generate(gemma, request("Hello", 2))
            assert sched.ps() == []  # the idle model was unloaded first
        finally:
            await sched.close()

    asyncio.run(main())


def test_different_num_ctx_reloads(smollm2: ModelRef) -> None:
    async def main() -> None:
        sched = scheduler(num_parallel=2)
        try:
            await complete(sched, smollm2, "Hello", 2, options={"num_ctx": 256})
            [first] = sched.ps()
            assert first.context_length == 512  # num_ctx x parallel
            await complete(sched, smollm2, "Hello", 2, options={"num_ctx": 256, "temperature": 0.5})
            assert sched.ps()[0].pid == first.pid  # sampling options do not reload
            await complete(sched, smollm2, "Hello", 2, options={"num_ctx": 512})
            [second] = sched.ps()
            assert second.pid != first.pid and second.context_length == 1024
            # Capped at the training context (8192 for SmolLM2).
            await complete(sched, smollm2, "Hello", 2, options={"num_ctx": 100_000})
            assert sched.ps()[0].context_length == 2 * 8192
            with pytest.raises(InvalidRequestError, match='option "num_ctx" must be of type integer'):
                await sched.generate(smollm2, request("Hi", 2), options={"num_ctx": "big"})
        finally:
            await sched.close()

    asyncio.run(main())


NEAR_TIE = 1e-3


def test_concurrent_requests_match_sequential_ones(smollm2: ModelRef) -> None:
    """Greedy output through the scheduler does not depend on batching; only
    a near-tie (top two logits within NEAR_TIE) may flip, as in the engine tests."""
    prompts = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a small village,",
               "The three primary colors are"]

    async def run(prompt: str) -> list[TokenLogprob]:
        events = await sched.generate(smollm2, GenerateRequest(
            prompt=prompt, options=SamplingOptions(temperature=0, num_predict=16), top_logprobs=2))
        out: list[TokenLogprob] = []
        async for event in events:
            if isinstance(event, Chunk):
                out.extend(event.logprobs)
        return out

    async def main() -> None:
        try:
            alone = [await run(p) for p in prompts]
            together = await asyncio.gather(*(run(p) for p in prompts))
            assert len({m.pid for m in sched.ps()}) == 1
        finally:
            await sched.close()
        for solo, mixed in zip(alone, together):
            assert len(solo) == len(mixed) == 16
            for a, b in zip(solo, mixed):
                if a.token != b.token:
                    assert a.top[0].logprob - a.top[1].logprob < NEAR_TIE, (a, b)
                    break

    sched = scheduler(num_parallel=4)
    asyncio.run(main())


def test_embeddings_through_the_scheduler(smollm2: ModelRef) -> None:
    from pyllama.engine import EmbedRequest

    async def main() -> None:
        sched = scheduler()
        try:
            result = await sched.embed(smollm2, EmbedRequest(["hello", "world"]))
            assert len(result.embeddings) == 2 and len(result.embeddings[0]) == 576
            assert abs(sum(x * x for x in result.embeddings[0]) - 1) < 1e-3
        finally:
            await sched.close()

    asyncio.run(main())


def test_automatic_parallel_falls_back_to_one_slot_when_four_do_not_fit(smollm2: ModelRef) -> None:
    """PYLLAMA_NUM_PARALLEL unset: 4 slots when 4 x num_ctx fits, else 1; a set value is kept."""
    async def main() -> None:
        probe = scheduler(context_length=8192)
        options = probe.runner_options(smollm2, None)
        one = probe._estimate(smollm2, options, 1, False).total
        four = probe._estimate(smollm2, options, 4, False).total
        assert one < four
        sched = Scheduler(probe.config, n_threads=1, memory_available=lambda: (one + four) // 2)
        try:
            await complete(sched, smollm2, "Hello", 2)
            [entry] = sched.ps()
            assert entry.as_dict()["num_parallel"] == 1 and entry.context_length == 8192
        finally:
            await sched.close()
        fixed = Scheduler(scheduler(context_length=256, num_parallel=3).config, n_threads=1)
        try:
            await complete(fixed, smollm2, "Hello", 2)
            [entry] = fixed.ps()
            assert entry.num_parallel == 3 and entry.context_length == 3 * 256
        finally:
            await fixed.close()

    asyncio.run(main())
