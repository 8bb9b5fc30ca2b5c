"""The load options that decide where the weights live reach llama.cpp:
``use_mmap`` (mapped file pages or the runner's own memory) and ``main_gpu``
(refused when it names a GPU the machine does not have)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pyllama.engine import InvalidRequestError
from pyllama.scheduler import ModelRef
from schedutil import complete, scheduler


def _memory(pid: int) -> dict[str, int]:
    """RssAnon / RssFile of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) * 1024
    return out


async def _runner_memory(ref: ModelRef, **options: object) -> dict[str, int]:
    sched = scheduler()
    try:
        await complete(sched, ref, "The capital of France is", 4, options=options)
        (loaded,) = sched.ps()
        return _memory(loaded.pid)
    finally:
        await sched.close()


def test_use_mmap_false_reads_the_weights_into_the_runner(smollm2: ModelRef) -> None:
    size = smollm2.path.stat().st_size
    mapped = asyncio.run(_runner_memory(smollm2, use_mmap=True))
    read = asyncio.run(_runner_memory(smollm2, use_mmap=False))
    # Mapped: the weights are file pages; read: they are the runner's own memory.
    assert mapped["RssFile"] > size // 2, mapped
    assert read["RssFile"] < size // 2, read
    assert read["RssAnon"] - mapped["RssAnon"] > size // 2, (read, mapped)


def test_main_gpu_must_name_a_device(smollm2: ModelRef) -> None:
    sched = scheduler()
    missing = max(1, sched.n_gpu_devices)

    async def main() -> None:
        try:
            with pytest.raises(InvalidRequestError, match=rf"main_gpu {missing} is not a GPU of this machine "
                                                          rf"\({sched.n_gpu_devices} GPU devices\)"):
                await complete(sched, smollm2, "Hi", 2, options={"main_gpu": missing})
            assert sched.ps() == []
            # 0 is the first GPU, or the CPU on a machine without GPUs: it loads and answers.
            tokens, _ = await complete(sched, smollm2, "Hi", 2, options={"main_gpu": 0})
            assert len(tokens) == 2
        finally:
            await sched.close()

    asyncio.run(main())
