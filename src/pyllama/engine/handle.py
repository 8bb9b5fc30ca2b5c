"""The caller's side of one request: a mailbox the loop thread fills.

The loop never blocks on a consumer. It appends events under a short lock;
consecutive chunks are merged when the consumer is behind (one wake-up, one
message, however many tokens piled up). Blocking iteration waits on a
condition variable; asyncio consumers are woken with one
``call_soon_threadsafe`` per batch of events, not per token. A consumer
that only relays events elsewhere can ``forward`` them instead: the loop
thread then hands each event to its callback and nobody else wakes. A consumer
that goes away (breaks out of the loop, its task is cancelled) cancels the
request, which frees the slot at the loop's next step.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

from pyllama.engine.errors import EngineError
from pyllama.engine.types import FINAL_EVENTS, Chunk, Done, Embeddings, Event, Failure, TokenLogprob


@dataclass
class Completion:
    """Everything a request produced, gathered by ``result()``."""

    text: str = ""
    tokens: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    final: Done | Embeddings | None = None

    @property
    def done(self) -> Done:
        """The final record of a completion request."""
        if not isinstance(self.final, Done):
            raise TypeError(f"not a completion result: {type(self.final).__name__}")
        return self.final

    @property
    def embeddings(self) -> list[list[float]]:
        """The vectors of an embedding request."""
        if not isinstance(self.final, Embeddings):
            raise TypeError(f"not an embedding result: {type(self.final).__name__}")
        return self.final.embeddings

    def add(self, event: Event) -> None:
        """Fold one event in; a Failure raises EngineError."""
        if isinstance(event, Chunk):
            self.text += event.text
            self.tokens.extend(event.tokens)
            self.logprobs.extend(event.logprobs)
        elif isinstance(event, Failure):
            raise EngineError(event.message, event.kind)
        else:
            self.final = event


def push_event(items: deque[Event], event: Event) -> None:
    """Append an event; a chunk following a chunk is merged into it (one
    wake-up and one message however many tokens piled up)."""
    last = items[-1] if items else None
    if isinstance(event, Chunk) and isinstance(last, Chunk):
        last.text += event.text
        last.tokens.extend(event.tokens)
        last.logprobs.extend(event.logprobs)
    else:
        items.append(event)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class RequestHandle:
    """Events of one request, in order, ending with exactly one final event
    (Done, Embeddings or Failure). Iterate it, ``async for`` over it, or call
    ``result()`` / ``await aresult()``."""

    def __init__(self, request_id: int, on_cancel: Callable[[RequestHandle], None]) -> None:
        self.id = request_id
        self._on_cancel = on_cancel
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._items: deque[Event] = deque()
        self._final_put = False
        self._final_taken = False
        self._cancelled = False
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
        self._sink: Callable[[Event], None] | None = None

    # ---- loop-thread side -------------------------------------------------

    def put(self, event: Event) -> None:
        """Deliver an event (called by the loop thread only)."""
        waiter = None
        with self._lock:
            if self._final_put:
                return
            final = self._final_put = isinstance(event, FINAL_EVENTS)
            sink = self._sink
            if sink is None:
                push_event(self._items, event)
                waiter, self._waiter = self._waiter, None
                self._ready.notify_all()
            elif final:
                self._final_taken = True
        if sink is not None:
            sink(event)  # outside the lock; only the loop thread puts, so in order
        elif waiter is not None:
            loop, fut = waiter
            try:
                loop.call_soon_threadsafe(_wake, fut)
            except RuntimeError:  # the consumer's event loop is closed: nobody to wake
                pass

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def finished(self) -> bool:
        """True once the final event has been delivered to the mailbox."""
        return self._final_put

    # ---- consumer side ------------------------------------------------------

    def forward(self, sink: Callable[[Event], None]) -> None:
        """Deliver every event by calling ``sink`` instead of keeping it for
        ``get``/``aget``: events already waiting go at once (on this thread),
        later ones on the loop thread as they happen, so ``sink`` must be
        quick and thread-safe and must not raise. The runner uses it to write
        event frames straight from the loop thread: one wake-up fewer per
        token than a relaying task."""
        with self._lock:
            if self._sink is not None:
                raise RuntimeError("this request's events are already forwarded")
            # Under the lock: a put racing with this waits until the backlog is out.
            while self._items:
                sink(self._take())
            self._sink = sink

    def cancel(self) -> None:
        """Stop the request; the loop frees its slot before the next decode
        and ends the stream with ``Failure(kind="cancelled")``."""
        with self._lock:
            if self._cancelled or self._final_put:
                return
            self._cancelled = True
        self._on_cancel(self)

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, blocking; None after the final one was taken.
        Raises TimeoutError when ``timeout`` seconds pass without one."""
        with self._lock:
            while not self._items:
                if self._final_taken:
                    return None
                if not self._ready.wait(timeout):
                    raise TimeoutError(f"no event for request {self.id} within {timeout}s")
            return self._take()

    async def aget(self) -> Event | None:
        """The next event without blocking the event loop; None at the end.
        If the awaiting task is cancelled, the request is cancelled too."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._items:
                    return self._take()
                if self._final_taken:
                    return None
                fut: asyncio.Future[None] = loop.create_future()
                self._waiter = (loop, fut)
            try:
                await fut
            except asyncio.CancelledError:
                with self._lock:
                    self._waiter = None
                self.cancel()
                raise

    def _take(self) -> Event:
        event = self._items.popleft()
        if isinstance(event, FINAL_EVENTS):
            self._final_taken = True
        return event

    def __iter__(self) -> Iterator[Event]:
        try:
            while (event := self.get()) is not None:
                yield event
        finally:
            if not self._final_taken:
                self.cancel()

    async def _aiter(self) -> AsyncIterator[Event]:
        try:
            while (event := await self.aget()) is not None:
                yield event
        finally:
            if not self._final_taken:
                self.cancel()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._aiter()

    def result(self, timeout: float | None = None) -> Completion:
        """Wait for the end and gather everything; a Failure raises EngineError."""
        out = Completion()
        while (event := self.get(timeout)) is not None:
            out.add(event)
        return out

    async def aresult(self) -> Completion:
        """``result()`` for asyncio callers."""
        out = Completion()
        while (event := await self.aget()) is not None:
            out.add(event)
        return out
