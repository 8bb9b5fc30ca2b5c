"""What the scheduler tells a watcher (the /metrics collector) as it works.

The scheduler calls these on its event loop at moments it handles anyway: a
load ends, a request's first and last event, a refusal, a runner that died.
A request's events pass through ``RequestWatch.see`` (one method call and an
``isinstance``: no per-token bookkeeping). The base class ignores
everything, so a server without metrics pays next to nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyllama.engine.types import FINAL_EVENTS, Chunk, Event, Failure

ABANDONED = Failure("the request was cancelled", kind="cancelled")


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


class RequestWatch:
    """One request's events, for the observer: its first chunk and its end."""

    __slots__ = ("_observer", "_model", "_started", "_first", "_ended")

    def __init__(self, observer: SchedulerObserver, model: str, waited_ns: int) -> None:
        self._observer = observer
        self._model = model
        self._started = time.perf_counter_ns() - waited_ns  # when it was scheduled
        self._first = True
        self._ended = False

    def see(self, event: Event) -> None:
        kind = type(event)  # not isinstance: a tuple of Struct types costs microseconds per event
        if kind is Chunk:
            if self._first:
                self._first = False
                self._observer.first_token(self._model, (time.perf_counter_ns() - self._started) / 1e9)
        elif kind in FINAL_EVENTS:
            self._ended = True
            self._observer.finished(self._model, event)

    def close(self) -> None:
        """The consumer stopped reading: a request that had not ended counts as cancelled."""
        if not self._ended:
            self._ended = True
            self._observer.finished(self._model, ABANDONED)


class SchedulerObserver:
    """Events of the scheduler's life; override what you count."""

    def watch(self, model: str, waited_ns: int) -> RequestWatch:
        """A tracker for one request's events (``waited_ns``: scheduling it took this long)."""
        return RequestWatch(self, model, waited_ns)

    @contextmanager
    def loading(self, model: str) -> Iterator[None]:
        """Around a runner start: ``model_loaded`` with its time and whether it raised."""
        t0 = time.monotonic()
        try:
            yield
        except Exception:  # a cancelled load (the server stopping) is not a failed one
            self.model_loaded(model, time.monotonic() - t0, ok=False)
            raise
        self.model_loaded(model, time.monotonic() - t0, ok=True)

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
