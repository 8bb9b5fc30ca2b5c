"""The runner process: one model's Engine behind a socket.

Started by the server (``python -m pyllama.runner --fd N``) with one end of
a socketpair. It reads the ``LoadSpec``, builds the Engine, answers
``Ready`` or ``LoadFailed``, then serves ``Submit``/``Cancel`` frames until
``Shutdown`` or the end of the stream (the server went away): a runner never
outlives its connection. The event loop only reads; a request's events are
queued by the engine's loop thread as they happen (``RequestHandle.forward``)
and written at the end of each step, all slots' tokens in one write: a
streamed token wakes no thread of this process besides the one that decoded
it, and one step wakes the server once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from pyllama import _native
from pyllama.engine import Engine, InvalidRequestError, RequestHandle
from pyllama.engine.types import FINAL_EVENTS, Event
from pyllama.llama_errors import collect_load_errors
from pyllama.runner.memory import estimate_memory, rss_bytes
from pyllama.store.adapters import check_adapter_file
from pyllama.runner.protocol import (
    Accepted,
    Cancel,
    EventFrame,
    FrameWriter,
    LoadFailed,
    LoadSpec,
    Progress,
    Ready,
    Rejected,
    Shutdown,
    Submit,
    read_frame,
    runner_codec,
)

log = logging.getLogger("pyllama.runner")

PROGRESS_INTERVAL = 1.0  # seconds between Progress frames while requests run


def load_engine(spec: LoadSpec) -> Engine:
    """Build and start the engine; raises with llama.cpp's reason on failure
    (for an adapter that does not fit, naming the adapter and the model)."""
    what = f"unable to load model: {spec.model}"
    t0 = time.perf_counter_ns()
    with collect_load_errors() as errors:
        try:
            model = _native.Model(spec.model, n_gpu_layers=spec.n_gpu_layers)
            adapters = []
            for path in spec.lora:
                what = f"unable to load LoRA adapter {path} for model {spec.model}"
                errors.lines.clear()
                check_adapter_file(path, spec.model)  # before llama.cpp: it would crash on some
                adapters.append(model.load_lora(path))
            what = f"unable to load model: {spec.model}"
            engine = Engine(model, n_ctx=spec.n_ctx, n_parallel=spec.n_parallel, n_batch=spec.n_batch,
                            n_threads=spec.n_threads or None, embeddings=spec.embeddings,
                            n_gpu_layers=spec.n_gpu_layers, flash_attn=spec.flash_attn,
                            type_k=spec.type_k, type_v=spec.type_v, lora=adapters,
                            prompt_cache_mib=spec.prompt_cache_mib)
            engine.load_duration = time.perf_counter_ns() - t0  # the weights and adapters too
        except Exception as exc:
            reason = errors.reason or str(exc)
            raise RuntimeError(what + (f": {reason}" if reason else "")) from exc
    return engine.start()


class RunnerServer:
    """Serves one connection for the life of the process."""

    def __init__(self, reader: asyncio.StreamReader, out: FrameWriter) -> None:
        self.reader = reader
        self.out = out
        self.codec = runner_codec()
        self.engine: Engine | None = None
        self.handles: dict[int, RequestHandle] = {}
        self._last_progress = 0.0

    def send(self, message: object) -> None:
        self.out.send(message)  # type: ignore[arg-type]

    async def handshake(self) -> bool:
        body = await read_frame(self.reader)
        if body is None:
            return False
        spec = self.codec.decode(body)
        if not isinstance(spec, LoadSpec):
            raise RuntimeError(f"expected a load frame first, got {type(spec).__name__}")
        try:
            engine = load_engine(spec)
        except RuntimeError as exc:
            self.send(LoadFailed(str(exc)))
            return False
        self.engine = engine
        engine.call_after_each_step(self.flush)
        memory = estimate_memory(spec.model, engine.ctx.n_ctx, n_ubatch=engine.ctx.n_ubatch,
                                 type_k=spec.type_k, type_v=spec.type_v)
        adapters = sum(os.path.getsize(path) for path in spec.lora)
        self.send(Ready(pid=os.getpid(), n_ctx=engine.ctx.n_ctx, n_ctx_slot=engine.n_ctx_slot,
                        n_parallel=engine.n_parallel, n_ctx_train=engine.model.n_ctx_train,
                        model_size=engine.model.size, memory=memory.total + adapters, rss=rss_bytes(),
                        load_duration=engine.load_duration))
        return True

    def forward(self, request_id: int, event: Event) -> None:
        """One event as a frame, queued on the engine's loop thread; the
        step's end flushes (``flush``)."""
        if isinstance(event, FINAL_EVENTS):
            self.handles.pop(request_id, None)
        self.out.queue(EventFrame(request_id, event))

    def flush(self) -> None:
        """Write the queued frames (and, at most once a second while requests
        run, a Progress frame). If the server is gone they are dropped:
        reading the end of stream stops everything."""
        now = time.monotonic()
        if self.handles and now - self._last_progress >= PROGRESS_INTERVAL:
            self._last_progress = now
            self.out.queue(Progress())
        try:
            self.out.flush()
        except OSError:
            pass

    def submit(self, message: Submit) -> None:
        assert self.engine is not None
        try:
            handle = self.engine.submit(message.request)
        except InvalidRequestError as exc:
            self.send(Rejected(message.id, str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - any submit failure goes back to that request
            self.send(Rejected(message.id, f"{type(exc).__name__}: {exc}", invalid=False))
            return
        self.handles[message.id] = handle
        self.send(Accepted(message.id))  # before any of its events: the server expects that order
        handle.forward(lambda event, request_id=message.id: self.forward(request_id, event))
        self.flush()  # events that came before forwarding began

    async def serve(self) -> None:
        """Handshake, then dispatch frames until Shutdown or end of stream."""
        try:
            if not await self.handshake():
                return
            while (body := await read_frame(self.reader)) is not None:
                message = self.codec.decode(body)
                if isinstance(message, Submit):
                    self.submit(message)
                elif isinstance(message, Cancel):
                    handle = self.handles.get(message.id)
                    if handle is not None:
                        handle.cancel()
                elif isinstance(message, Shutdown):
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            if self.engine is not None:
                self.engine.close(timeout=5)


async def serve_socket(sock: socket.socket) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    try:
        await RunnerServer(reader, FrameWriter(sock, runner_codec())).serve()
    finally:
        writer.close()


def main(fd: int, log_level: int = logging.WARNING) -> None:
    """Entry point of ``python -m pyllama.runner``."""
    logging.basicConfig(level=log_level, format=f"runner[{os.getpid()}] %(levelname)s %(name)s: %(message)s")
    _native.set_log_level(log_level)
    sock = socket.socket(fileno=fd)
    started = time.monotonic()
    asyncio.run(serve_socket(sock))
    log.debug("runner exits after %.1fs", time.monotonic() - started)
