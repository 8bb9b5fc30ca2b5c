"""Helpers shared by the scheduler tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from pyllama.config import Config
from pyllama.engine import Chunk, Done, Event, GenerateRequest, SamplingOptions
from pyllama.scheduler import Scheduler


def scheduler(**config: Any) -> Scheduler:
    """A scheduler with test-sized defaults (one thread, num_ctx 512) and
    ``config`` overriding Config fields."""
    fields: dict[str, Any] = {"context_length": 512, **config}
    return Scheduler(Config(**fields), n_threads=1)


def request(prompt: str, n: int, **options: Any) -> GenerateRequest:
    return GenerateRequest(prompt=prompt, options=SamplingOptions(temperature=0, num_predict=n, **options))


async def drain(events: AsyncIterator[Event]) -> tuple[list[int], Event | None]:
    """Tokens of a stream and its final event."""
    tokens: list[int] = []
    final: Event | None = None
    async for event in events:
        if isinstance(event, Chunk):
            tokens.extend(event.tokens)
        else:
            final = event
    return tokens, final


async def complete(sched: Scheduler, ref: Any, prompt: str, n: int, **kw: Any) -> tuple[list[int], Done]:
    tokens, final = await drain(await sched.generate(ref, request(prompt, n), **kw))
    assert isinstance(final, Done), final
    return tokens, final


async def wait_until(check: Callable[[], bool], timeout: float = 30.0, step: float = 0.05) -> None:
    """Poll ``check`` until true; fail after ``timeout`` seconds (a bound, not a measurement)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(step)
