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
from pyllama.runner.rpc_devices import add_rpc_servers, device_use
from pyllama.store.adapters import check_adapter_file
from pyllama.store.draft import check_draft_file
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


def kv_cells_used(ctx: _native.Context) -> int:
    """Cells the context's sequences hold: each sequence's position span
    (n_seq_max calls into llama.cpp; only on the loop thread, which owns the context).
    0 for a context without a KV cache (a non-causal embedding model's)."""
    used = 0
    try:
        for seq in range(ctx.n_seq_max):
            top = ctx.seq_pos_max(seq)
            if top >= 0:
                used += top - ctx.seq_pos_min(seq) + 1
    except _native.LlamaError:
        return 0
    return used


def load_engine(spec: LoadSpec) -> Engine:
    """Build and start the engine; raises with llama.cpp's reason on failure
    (for an adapter that does not fit, naming the adapter and the model)."""
    what = f"unable to load model: {spec.model}"
    t0 = time.perf_counter_ns()
    with collect_load_errors() as errors:
        try:
            if spec.rpc_servers:
                add_rpc_servers(spec.rpc_servers)
            model = _native.Model(spec.model, n_gpu_layers=spec.n_gpu_layers, load_mode=spec.load_mode,
                                  tensor_split=spec.tensor_split or None, **_placement(spec.main_gpu))
            adapters = []
            for path in spec.lora:
                what = f"unable to load LoRA adapter {path} for model {spec.model}"
                errors.lines.clear()
                check_adapter_file(path, spec.model)  # before llama.cpp: it would crash on some
                adapters.append(model.load_lora(path))
            projector = None
            if spec.projector and not spec.embeddings:
                what = f"unable to load projector {spec.projector} for model {spec.model}"
                errors.lines.clear()
                projector = _native.Projector(spec.projector, model, n_threads=spec.n_threads or None,
                                              use_gpu=spec.n_gpu_layers != 0, flash_attn=spec.flash_attn)
            what = f"unable to load draft model {spec.draft} for model {spec.model}"
            errors.lines.clear()
            if spec.draft:
                check_draft_file(spec.draft, spec.model)
            what = f"unable to load model: {spec.model}"
            engine = Engine(model, n_ctx=spec.n_ctx, n_parallel=spec.n_parallel, n_batch=spec.n_batch,
                            n_threads=spec.n_threads or None, embeddings=spec.embeddings,
                            n_gpu_layers=spec.n_gpu_layers, flash_attn=spec.flash_attn,
                            type_k=spec.type_k, type_v=spec.type_v, lora=adapters, projector=projector,
                            draft=spec.draft or None, prompt_cache_mib=spec.prompt_cache_mib)
            engine.load_duration = time.perf_counter_ns() - t0  # the weights and adapters too
        except Exception as exc:
            reason = errors.reason or str(exc)
            raise RuntimeError(what + (f": {reason}" if reason else "")) from exc
    return engine.start()


def _placement(main_gpu: int | None) -> dict[str, object]:
    """main_gpu set: every layer on that one GPU, as llama.cpp's ``--split-mode none
    --main-gpu N``; unset: layers spread over all GPUs."""
    return {} if main_gpu is None else {"split_mode": "none", "main_gpu": main_gpu}


class RunnerServer:
    """Serves one connection for the life of the process."""

    def __init__(self, reader: asyncio.StreamReader, out: FrameWriter) -> None:
        self.reader = reader
        self.out = out
        self.codec = runner_codec()
        self.engine: Engine | None = None
        self.handles: dict[int, RequestHandle] = {}
        self._last_progress = 0.0
        self._was_busy = False

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
        engine.call_after_each_step(self.after_step)
        memory = estimate_memory(spec.model, engine.ctx.n_ctx, n_ubatch=engine.ctx.n_ubatch,
                                 type_k=spec.type_k, type_v=spec.type_v)
        adapters = sum(os.path.getsize(path) for path in spec.lora)
        if engine.draft is not None:
            adapters += estimate_memory(spec.draft, engine.draft.ctx.n_ctx, n_ubatch=engine.draft.ctx.n_ubatch,
                                        type_k=spec.type_k, type_v=spec.type_v).total
        self.send(Ready(pid=os.getpid(), n_ctx=engine.ctx.n_ctx, n_ctx_slot=engine.n_ctx_slot,
                        n_parallel=engine.n_parallel, n_ctx_train=engine.model.n_ctx_train,
                        model_size=engine.model.size, memory=memory.total + adapters, rss=rss_bytes(),
                        load_duration=engine.load_duration,
                        devices=device_use(engine.ctx) if spec.rpc_servers else []))
        return True

    def forward(self, request_id: int, event: Event) -> None:
        """One event as a frame, queued on the engine's loop thread; the
        step's end flushes (``flush``)."""
        if isinstance(event, FINAL_EVENTS):
            self.handles.pop(request_id, None)
        self.out.queue(EventFrame(request_id, event))

    def after_step(self) -> None:
        """On the engine's loop thread after each step: a Progress frame at most
        once a second while requests run and once when the last one ended
        (the KV cells an idle runner keeps for its prompt cache), then flush."""
        busy = bool(self.handles)
        now = time.monotonic()
        if (busy and now - self._last_progress >= PROGRESS_INTERVAL) or (self._was_busy and not busy):
            self._last_progress = now
            assert self.engine is not None
            self.out.queue(Progress(kv_cells_used(self.engine.ctx)))  # never raises: this thread decodes
        self._was_busy = busy
        self.flush()

    def flush(self) -> None:
        """Write the queued frames. If the server is gone they are dropped:
        reading the end of stream stops everything."""
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
