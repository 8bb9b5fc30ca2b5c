"""The server's side of a runner: start the process, multiplex requests.

``RunnerClient.start`` spawns ``python -m pyllama.runner`` (a fresh
interpreter: llama.cpp's OpenMP runtime is not fork-safe) with one end of a
socketpair, sends the load spec and waits for the handshake, racing it
against the process exiting and a timeout. Afterwards one reader task
dispatches event frames to per-request mailboxes; any number of asyncio
tasks can stream over the one connection. If the connection ends while
requests are in flight (the process was killed, crashed in native code),
each of them gets a final ``Failure(kind="runner")`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import AsyncIterator

from pyllama.engine import InvalidRequestError
from pyllama.engine.handle import push_event
from pyllama.engine.types import FINAL_EVENTS, Event, Failure, Request
from pyllama.rpc.wire import not_listening
from pyllama.runner.errors import RunnerDiedError, RunnerError, RunnerLoadError
from pyllama.runner.protocol import (
    Accepted,
    Cancel,
    EventFrame,
    FrameCodec,
    FrameError,
    FrameProtocol,
    LoadFailed,
    LoadSpec,
    Progress,
    Ready,
    Rejected,
    Shutdown,
    Submit,
    server_codec,
)

log = logging.getLogger("pyllama.runner")

_STDERR_LINES = 40


THREAD_WAIT_POLICIES = ("auto", "passive", "active")


def runner_env(spec: LoadSpec) -> dict[str, str] | None:
    """The runner's environment: the server's, with ``spec.thread_wait`` as
    OpenMP's wait policy (ggml's CPU threads are OpenMP threads, and libgomp
    reads the policy once, at start-up). None ("auto" or unset): inherit
    unchanged, so libgomp spins briefly and then sleeps, as llama.cpp's own
    tools run."""
    if spec.thread_wait in ("", "auto"):
        return None
    if spec.thread_wait not in THREAD_WAIT_POLICIES:
        raise ValueError(f"thread wait policy must be one of auto, passive, active (got {spec.thread_wait!r})")
    return {**os.environ, "OMP_WAIT_POLICY": spec.thread_wait.upper()}


def describe_exit(returncode: int | None) -> str:
    """``exit status 1`` / ``signal 9 (SIGKILL)`` for messages."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown"
        return f"signal {-returncode} ({name})"
    return f"exit status {returncode}"


class RunnerStream:
    """The events of one request. ``async for`` over it; leaving early (or
    the consuming task being cancelled) cancels the request in the runner."""

    def __init__(self, client: RunnerClient, request_id: int) -> None:
        self.id = request_id
        self._client = client
        self._items: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._final_put = False
        self._final_taken = False
        self.accepted: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def put(self, event: Event) -> None:
        """Deliver an event; consecutive chunks merge while the consumer is behind."""
        if self._final_put:
            return
        push_event(self._items, event)
        self._final_put = isinstance(event, FINAL_EVENTS)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    @property
    def finished(self) -> bool:
        return self._final_taken

    async def next(self) -> Event | None:
        """The next event; None after the final one."""
        while not self._items:
            if self._final_taken:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        event = self._items.popleft()
        if isinstance(event, FINAL_EVENTS):
            self._final_taken = True
        return event

    def cancel(self) -> None:
        """Ask the runner to stop this request (it ends with a cancelled Failure)."""
        if not self._final_put:
            self._client._cancel(self.id)

    async def _iterate(self) -> AsyncIterator[Event]:
        try:
            while (event := await self.next()) is not None:
                yield event
        finally:
            if not self._final_taken:
                self.cancel()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()


class RunnerClient:
    """One runner process and the connection to it."""

    def __init__(self, spec: LoadSpec, process: asyncio.subprocess.Process) -> None:
        self.spec = spec
        self.process = process
        self._transport: asyncio.Transport | None = None
        self._codec: FrameCodec = server_codec()
        self._streams: dict[int, RunnerStream] = {}
        self._ids = itertools.count(1)
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._stderr_task = asyncio.create_task(self._read_stderr())
        self._first: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._lost_task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._closing = False
        self.exit_message = ""
        self.stop_reason = "the model runner was stopped"  # what requests in flight hear on close()
        self.info: Ready | None = None
        self.last_progress = time.monotonic()  # the last frame, or when work arrived at an idle runner
        self.kv_used = 0  # KV cache cells in use, as the last Progress frame said

    # ---- start ------------------------------------------------------------------------

    @classmethod
    async def start(cls, spec: LoadSpec, *, timeout: float = 300.0, log_level: str = "WARNING") -> RunnerClient:
        """Spawn a runner and wait for its handshake. Raises RunnerLoadError
        when the model cannot be loaded, the process dies while loading, or
        the handshake does not come within ``timeout`` seconds."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pyllama.runner", "--fd", str(theirs.fileno()), "--log-level", log_level,
                pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL, env=runner_env(spec),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        client = cls(spec, process)
        try:
            client._transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
                lambda: FrameProtocol(client._codec, client._on_message, client._on_lost), sock=ours)
            await client._handshake(timeout)
        except BaseException:
            if client._transport is None:
                ours.close()
            await client.kill()
            raise
        return client

    async def _handshake(self, timeout: float) -> None:
        self._send(self.spec)
        exited = asyncio.ensure_future(self.process.wait())
        try:
            done, _ = await asyncio.wait({self._first, exited}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not exited.done():
                exited.cancel()
        message = self._first.result() if self._first.done() else None
        prefix = f"unable to load model: {self.spec.model}"
        if message is None:
            if not done:
                raise RunnerLoadError(f"{prefix}: timed out after {timeout:g}s waiting for the runner to load it")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.process.wait(), 5)
            await self._drain_stderr()
            raise RunnerLoadError(f"{prefix}: runner exited during load ({describe_exit(self.process.returncode)})"
                                  + self._stderr_reason())
        if isinstance(message, LoadFailed):
            raise RunnerLoadError(message.message)
        if not isinstance(message, Ready):
            raise RunnerLoadError(f"{prefix}: unexpected handshake frame {type(message).__name__}")
        self.info = message
        if self._lost_task is None and self._transport is not None and self._transport.is_closing():
            self._on_lost(None)  # it went away right after the handshake

    # ---- stderr -------------------------------------------------------------------------

    async def _read_stderr(self) -> None:
        stream = self.process.stderr
        if stream is None:
            return
        while line := await stream.readline():
            text = line.decode("utf-8", "replace").rstrip()
            self._stderr.append(text)
            log.debug("runner %d: %s", self.process.pid, text)

    async def _drain_stderr(self) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), 2)

    def _stderr_reason(self) -> str:
        lines = [line for line in self._stderr if line.strip()]
        return f": {lines[-1]}" if lines else ""

    # ---- traffic --------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return not self._closed.is_set() and self.process.returncode is None

    @property
    def in_flight(self) -> int:
        return len(self._streams)

    async def submit(self, request: Request) -> RunnerStream:
        """Send a request and wait until the runner accepted it. Raises
        InvalidRequestError for a request the engine rejects, RunnerDiedError
        when the runner is gone."""
        if not self.alive or self._closing:
            raise RunnerDiedError(self.exit_message or "the model runner is not running")
        stream = RunnerStream(self, next(self._ids))
        if not self._streams:
            self.last_progress = time.monotonic()  # idle time is not a stall
        self._streams[stream.id] = stream
        try:
            self._send(Submit(stream.id, request))
            await stream.accepted
        except BaseException:
            # Cancelled while waiting for the answer: the runner will accept
            # the request anyway (frames are handled in order), so cancel it
            # there too or it would hold a slot for nobody.
            fut = stream.accepted
            rejected = fut.done() and not fut.cancelled() and fut.exception() is not None
            self._streams.pop(stream.id, None)
            if not rejected:
                self._send_cancel(stream.id)
            raise
        return stream

    def _cancel(self, request_id: int) -> None:
        if request_id in self._streams:
            self._send_cancel(request_id)

    def _send_cancel(self, request_id: int) -> None:
        if self.alive and not self._closing:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                self._send(Cancel(request_id))

    def _dispatch(self, message: object) -> None:
        self.last_progress = time.monotonic()
        if isinstance(message, Progress):
            self.kv_used = message.kv_used
            return
        if isinstance(message, EventFrame):
            stream = self._streams.get(message.id)
            if stream is not None:
                stream.put(message.event)
                if isinstance(message.event, FINAL_EVENTS):
                    del self._streams[message.id]
        elif isinstance(message, Accepted):
            stream = self._streams.get(message.id)
            if stream is not None and not stream.accepted.done():
                stream.accepted.set_result(None)
        elif isinstance(message, Rejected):
            stream = self._streams.pop(message.id, None)
            if stream is not None and not stream.accepted.done():
                error = InvalidRequestError(message.message) if message.invalid else RunnerError(message.message)
                stream.accepted.set_exception(error)
        else:
            log.warning("runner %d sent an unexpected %s frame", self.pid, type(message).__name__)

    def _send(self, message: LoadSpec | Submit | Cancel | Shutdown) -> None:
        if self._transport is None or self._transport.is_closing():
            raise RunnerDiedError(self.exit_message or "the model runner is not running")
        self._transport.write(self._codec.encode(message))

    def _on_message(self, message: object) -> None:
        """Called by FrameProtocol for each frame, in the read callback."""
        if self.info is None:
            if not self._first.done():
                self._first.set_result(message)
            return
        self._dispatch(message)

    def _on_lost(self, exc: BaseException | None) -> None:
        """The connection ended (or carried garbage): fail what is in flight, once."""
        if isinstance(exc, FrameError):
            log.warning("runner %d connection failed: %s", self.pid, exc)
        if not self._first.done():
            self._first.set_result(None)
        elif self.info is not None and self._lost_task is None:
            self._lost_task = asyncio.ensure_future(self._connection_lost())

    async def _connection_lost(self) -> None:
        """Fail everything in flight with a clear reason, once."""
        if not self._closing:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.process.wait(), 5)
            await self._drain_stderr()
        # Decided after the wait: a shutdown signal that reached the runner too
        # (Ctrl+C, a process group's SIGTERM) is a stop, not a crash.
        if not self._closing:
            self.exit_message = ("model runner has unexpectedly stopped "
                                 f"({describe_exit(self.process.returncode)})" + self._stderr_reason())
            if self.spec.rpc_servers:  # ggml-rpc aborts the runner when a server goes away
                down = await asyncio.to_thread(not_listening, self.spec.rpc_servers)
                self.exit_message += (f"; RPC server {', '.join(down)} is not answering" if down else
                                      f" (its RPC servers: {', '.join(self.spec.rpc_servers)})")
            log.error("runner %d for %s: %s", self.pid, self.spec.model, self.exit_message)
        else:
            self.exit_message = self.stop_reason
        self._fail_all(self.exit_message)
        self._closed.set()

    def _fail_all(self, message: str) -> None:
        """End every request in flight with ``message``."""
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            if not stream.accepted.done():
                stream.accepted.set_exception(RunnerDiedError(message))
            stream.put(Failure(message, kind="runner"))

    # ---- stop -------------------------------------------------------------------------------

    async def wait_closed(self) -> None:
        """Until the connection is gone (the process exited or was stopped)."""
        await self._closed.wait()

    async def close(self, timeout: float = 10.0) -> None:
        """Ask the runner to shut down; kill it if it does not within ``timeout``."""
        if self.process.returncode is None and not self._closing:
            self._closing = True
            self._fail_all(self.stop_reason)  # before the runner's own "engine was closed"
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                self._send(Shutdown())
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except asyncio.TimeoutError:
                log.warning("runner %d did not stop within %gs; killing it", self.pid, timeout)
        await self.kill()

    async def abort(self, reason: str) -> None:
        """Kill the runner; requests in flight fail with ``reason``."""
        self.stop_reason = reason
        await self.kill()

    async def kill(self) -> None:
        """Stop the process at once (SIGKILL) and release everything."""
        self._closing = True
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        if self._transport is not None:
            self._transport.close()
        if self.info is not None:
            self._on_lost(None)  # at once, not when the closed transport reports it (then a no-op)
            await asyncio.gather(self._lost_task, return_exceptions=True)  # type: ignore[arg-type]
        self._closed.set()
        await self._drain_stderr()
        if not self._stderr_task.done():
            self._stderr_task.cancel()
