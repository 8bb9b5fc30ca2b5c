"""What the scheduler tells a watcher (the /metrics collector) as it works.

The scheduler calls these on its event loop at moments it handles anyway: a
load ends, a request's first and last event, a refusal, a runner that died.
Never per token. The base class ignores everything, so a server without
metrics pays one no-op call per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyllama.engine.types import Event


@dataclass(frozen=True)
class RunnerStat:
    """One loaded runner, read at scrape time: its slots and KV cache cells.

    ``role`` is "generate" or "embed" (a model can have one runner of each);
    ``kv_used`` is what the runner last reported (at most a second old while it
    works, exact once it goes idle)."""

    model: str
    role: str
    slots: int
    slots_busy: int
    kv_used: int
    kv_total: int


class SchedulerObserver:
    """Events of the scheduler's life; override what you count."""

    def model_loaded(self, model: str, seconds: float, ok: bool) -> None:
        """A runner finished loading (``ok``) or failed to, after ``seconds``."""

    def queue_full(self) -> None:
        """A request was refused with 503: PYLLAMA_MAX_QUEUE requests were waiting."""

    def runner_exited(self, model: str) -> None:
        """A runner stopped on its own (crash, watchdog); the next request starts a new one."""

    def first_token(self, model: str, seconds: float) -> None:
        """A completion's first tokens arrived ``seconds`` after it was scheduled."""

    def finished(self, model: str, event: Event) -> None:
        """A request's final event (Done, Embeddings or Failure), timings included."""
