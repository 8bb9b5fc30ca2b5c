"""One loaded model as the scheduler tracks it: its runner process, slots,
memory accounting and keep-alive state."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from pyllama.model_ref import ModelRef, RunnerOptions
from pyllama.runner import MemoryEstimate, RunnerClient

_FOREVER_SECONDS = (2**63 - 1) / 1e9  # Go's max Duration, as Ollama prints "forever"

RunnerKey = tuple[str, tuple[str, ...], bool, str, str]  # weights, adapters, embeddings, projector, draft ("": none)


@dataclass(eq=False)
class LoadedRunner:
    """One loaded model: its process, accounting and keep-alive state."""

    key: RunnerKey
    ref: ModelRef
    options: RunnerOptions  # num_ctx resolved (never 0)
    client: RunnerClient
    estimate: MemoryEstimate
    size_vram: int
    slots: asyncio.Semaphore
    keep_alive: float
    refs: int = 0
    n_slots: int = 1  # the size of ``slots``
    busy: int = 0  # slots held (refs also counts requests still waiting for one)
    last_used: float = field(default_factory=time.monotonic)
    expires_at: float = 0.0
    timer: asyncio.TimerHandle | None = None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def set_expiry(self, now: float) -> None:
        seconds = _FOREVER_SECONDS if math.isinf(self.keep_alive) else self.keep_alive
        self.expires_at = now + seconds
