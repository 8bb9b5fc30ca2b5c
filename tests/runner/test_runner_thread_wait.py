"""PYLLAMA_THREAD_WAIT reaches the runner as OpenMP's wait policy (ggml's
CPU threads are OpenMP threads); a value we do not know stops the server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pyllama.config import Config
from pyllama.runner import LoadSpec, RunnerClient
from pyllama.scheduler import Scheduler


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in raw if item)


@pytest.mark.parametrize("policy", ["passive", "active", "auto", ""])
def test_the_runner_gets_the_wait_policy(smollm2: Path, policy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)

    async def main() -> None:
        spec = LoadSpec(model=str(smollm2), n_ctx=256, n_threads=1, thread_wait=policy)
        client = await RunnerClient.start(spec)
        try:
            env = _environ(client.pid)
            # auto (and unset): libgomp's own default, spin briefly then sleep
            assert env.get("OMP_WAIT_POLICY") == ({"passive": "PASSIVE", "active": "ACTIVE"}.get(policy))
        finally:
            await client.close()

    asyncio.run(main())


def test_config_reads_the_policy_and_the_scheduler_refuses_unknown_ones() -> None:
    assert Config.from_env({"PYLLAMA_THREAD_WAIT": "Passive"}).thread_wait == "passive"
    assert Config.from_env({}).thread_wait == "auto"  # the measured default (docs/engine.md)
    for bad in ("sometimes", ""):
        with pytest.raises(ValueError, match=f"unsupported thread wait policy '{bad}'"):
            Scheduler(Config(thread_wait=bad))
    Scheduler(Config(thread_wait="auto"))
