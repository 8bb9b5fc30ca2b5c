"""keep_alive: parsing Ollama's formats, expiry, 0 unloads, negative keeps,
explicit unload and the PYLLAMA_KEEP_ALIVE default."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from pyllama.keep_alive import KeepAliveError, format_duration, parse_env_keep_alive, parse_keep_alive
from pyllama.scheduler import ModelRef

from schedutil import complete, scheduler, wait_until


@pytest.mark.parametrize(("value", "seconds"), [
    ("5m", 300.0), ("1h30m", 5400.0), ("10s", 10.0), ("300ms", 0.3), ("1.5h", 5400.0), ("0", 0.0),
    (30, 30.0), (2.5, 2.5), (0, 0.0), (-1, math.inf), ("-5m", math.inf), (" 2m ", 120.0),
])
def test_keep_alive_formats(value: object, seconds: float) -> None:
    assert parse_keep_alive(value) == pytest.approx(seconds)


@pytest.mark.parametrize(("value", "message"), [
    ("300", 'time: missing unit in duration "300"'),
    ("5x", 'time: unknown unit "x" in duration "5x"'),
    ("abc", 'time: invalid duration "abc"'),
    ([1], "Unsupported type: 'list'"),
    (True, "Unsupported type: 'bool'"),
])
def test_bad_keep_alive_values(value: object, message: str) -> None:
    with pytest.raises(KeepAliveError) as info:
        parse_keep_alive(value)
    assert str(info.value) == message


def test_environment_default_takes_durations_and_integer_seconds() -> None:
    assert parse_env_keep_alive("10m") == 600.0
    assert parse_env_keep_alive("120") == 120.0
    assert parse_env_keep_alive("-1") == math.inf
    with pytest.raises(KeepAliveError):
        parse_env_keep_alive("soon")


def test_durations_print_like_go() -> None:
    assert [format_duration(s) for s in (300, 5400, 10, 0.3, 0, math.inf)] == \
        ["5m0s", "1h30m0s", "10s", "300ms", "0s", "-1"]


def test_keep_alive_expiry_and_zero(smollm2: ModelRef) -> None:
    async def main() -> None:
        sched = scheduler(keep_alive="1s")
        try:
            # expires_at is the request's end plus keep_alive: bracketed by
            # clock readings taken around the request, not compared with "now".
            before = time.time()
            await complete(sched, smollm2, "Hello", 2, keep_alive="10m")
            after = time.time()
            [loaded] = sched.ps()
            assert loaded.name == "smollm2:latest" and before + 600 <= loaded.expires_at <= after + 600
            # A request without keep_alive sets the default (1s here) again;
            # it runs out and the runner is unloaded by itself.
            await complete(sched, smollm2, "Hello", 2)
            await wait_until(lambda: not sched.ps(), timeout=30)

            # keep_alive 0: unloaded as soon as the request ends.
            await complete(sched, smollm2, "Hello", 2, keep_alive=0)
            assert sched.ps() == []

            # Negative: forever (Go's max duration, ~292 years).
            await complete(sched, smollm2, "Hello", 2, keep_alive=-1)
            [loaded] = sched.ps()
            assert loaded.expires_at - time.time() > 200 * 365 * 86400
            assert loaded.as_dict()["expires_at"].startswith(str(time.gmtime().tm_year + 292)[:3])
            # The latest request's value replaces the runner's keep-alive.
            pid = loaded.pid
            await complete(sched, smollm2, "Hello", 2, keep_alive="1s")
            assert sched.ps()[0].pid == pid
            await wait_until(lambda: not sched.ps(), timeout=30)
        finally:
            await sched.close()

    asyncio.run(main())


def test_load_and_unload_without_a_prompt(smollm2: ModelRef) -> None:
    async def main() -> None:
        sched = scheduler()  # default keep_alive 5m
        try:
            before = time.time()
            await sched.load(smollm2)
            after = time.time()
            [loaded] = sched.ps()
            assert before + 300 <= loaded.expires_at <= after + 300
            entry = loaded.as_dict()
            assert set(entry) == {"name", "model", "size", "digest", "details", "expires_at", "size_vram",
                                  "context_length", "num_parallel"}
            assert entry["size"] > smollm2.path.stat().st_size and entry["size_vram"] == 0
            # PYLLAMA_NUM_PARALLEL unset: 4 slots of num_ctx 512 each (the memory fits).
            assert entry["num_parallel"] == 4 and entry["context_length"] == 4 * 512
            assert entry["details"]["family"] == "llama"
            assert await sched.unload(smollm2)
            assert sched.ps() == []
            assert not await sched.unload("smollm2:latest")
        finally:
            await sched.close()

    asyncio.run(main())
