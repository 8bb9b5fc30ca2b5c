"""Failures stay inside their runner: a killed runner fails its requests
and the next request gets a new one; a corrupt model fails to load while
another keeps serving."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from pyllama.engine import Chunk, Failure
from pyllama.scheduler import ModelLoadError, ModelRef

from schedutil import complete, drain, request, scheduler


def test_killed_runner_then_recovery(smollm2: ModelRef, eog_ban: dict[int, float]) -> None:
    async def main() -> None:
        sched = scheduler(num_parallel=2)
        try:
            events = await sched.generate(smollm2, request("Tell me a story.", 400, logit_bias=eog_ban))
            first = await events.__anext__()
            assert isinstance(first, Chunk)
            pid = sched.ps()[0].pid
            os.kill(pid, signal.SIGKILL)
            _, final = await drain(events)
            assert isinstance(final, Failure) and final.kind == "runner"
            assert "unexpectedly stopped" in final.message
            # The next request starts a new runner.
            tokens, done = await complete(sched, smollm2, "Hello", 4)
            assert done.eval_count == len(tokens) == 4
            [loaded] = sched.ps()
            assert loaded.pid != pid
        finally:
            await sched.close()

    asyncio.run(main())


def test_corrupt_model_fails_while_another_serves(smollm2: ModelRef, broken: ModelRef,
                                                  eog_ban: dict[int, float]) -> None:
    async def main() -> None:
        sched = scheduler()
        try:
            events = await sched.generate(smollm2, request("Once upon a time", 24, logit_bias=eog_ban))
            with pytest.raises(ModelLoadError) as info:
                await sched.generate(broken, request("Hi", 2))
            assert info.value.message.startswith(f"unable to load model: {broken.path}")
            assert info.value.status_code == 500
            tokens, final = await drain(events)
            assert len(tokens) == 24 and not isinstance(final, Failure)
            assert [m.name for m in sched.ps()] == ["smollm2:latest"]
            await complete(sched, smollm2, "Hello", 2)
        finally:
            await sched.close()

    asyncio.run(main())


def test_cancelled_consumer_frees_its_slot(smollm2: ModelRef, eog_ban: dict[int, float]) -> None:
    async def main() -> None:
        sched = scheduler(num_parallel=1)
        try:
            started = asyncio.Event()

            async def consume() -> None:
                async for event in await sched.generate(smollm2, request("Count:", 400, logit_bias=eog_ban)):
                    if isinstance(event, Chunk):
                        started.set()

            task = asyncio.create_task(consume())
            await started.wait()
            task.cancel()  # what a client disconnect does to the HTTP handler
            with pytest.raises(asyncio.CancelledError):
                await task
            # The only slot is free again, and the runner is still the same.
            pid = sched.ps()[0].pid
            await complete(sched, smollm2, "Hello", 2)
            assert sched.ps()[0].pid == pid and sched.pending == 0
        finally:
            await sched.close()

    asyncio.run(main())
