"""Frames between the server and a runner process.

Every frame is a 4-byte little-endian length followed by one msgpack-encoded
Struct. The server sends ``Load`` once, then ``Submit``/``Cancel`` frames and
finally ``Shutdown``; the runner answers ``Ready`` (or ``LoadFailed``), then
``Accepted``/``Rejected`` per submit and ``EventFrame``s tagged with the
request id. Engine requests and events travel as they are: they are already
array-like msgspec Structs.
"""

from __future__ import annotations

import asyncio
import select
import socket
import struct
import threading
from collections.abc import Callable
from typing import Union

import msgspec

from pyllama.engine.types import Event, Request

_HEADER = struct.Struct("<I")
MAX_FRAME = 1 << 30  # a frame this large means the stream is corrupt


class LoadSpec(msgspec.Struct, tag="load", array_like=True, omit_defaults=True, gc=False):
    """How to build the runner's Engine. ``n_ctx`` is the whole context
    (num_ctx x n_parallel)."""

    model: str
    n_ctx: int
    n_parallel: int = 1
    n_batch: int = 512
    n_threads: int = 0  # 0: the engine's default
    embeddings: bool = False
    projector: str = ""  # a multimodal projector GGUF (mmproj): requests may carry images/audio
    n_gpu_layers: int = -1
    flash_attn: Union[bool, None] = None
    type_k: str = "f16"
    type_v: str = "f16"
    lora: list[str] = []  # LoRA adapter GGUFs, applied with scale 1.0 unless a request says otherwise
    main_gpu: Union[int, None] = None  # set: the whole model on this GPU (llama.cpp's split mode "none")
    load_mode: str = "auto"  # use_mmap: "auto" (unset), "mmap" (true) or "none" (false: read into RAM)
    rpc_servers: list[str] = []  # host:port of RPC servers whose devices join this runner's (probed first)
    tensor_split: list[float] = []  # shares of the offloaded layers per device; empty: by free memory
    draft: str = ""  # a draft model GGUF for speculative decoding ("" none)
    prompt_cache_mib: int = 0  # host-memory prompt cache budget (PYLLAMA_PROMPT_CACHE_MIB)
    thread_wait: str = ""  # OpenMP wait policy of the decode threads ("passive"/"active"; "" or "auto": libgomp's)


class Submit(msgspec.Struct, tag="submit", array_like=True, gc=False):
    id: int
    request: Request


class Cancel(msgspec.Struct, tag="cancel", array_like=True, gc=False):
    id: int


class Shutdown(msgspec.Struct, tag="shutdown", array_like=True, gc=False):
    pass


class DeviceUse(msgspec.Struct, array_like=True, gc=False):
    """Bytes of weights, KV cache and compute buffers one device holds for the runner;
    ``description`` is an RPC device's endpoint."""

    name: str
    description: str
    size: int


class Ready(msgspec.Struct, tag="ready", array_like=True, omit_defaults=True, gc=False):
    """The handshake: what the scheduler needs to account for the runner.
    ``memory`` is the estimate for the context actually created; ``rss`` the
    runner's resident memory right after loading."""

    pid: int
    n_ctx: int
    n_ctx_slot: int
    n_parallel: int
    n_ctx_train: int
    model_size: int
    memory: int
    rss: int = 0
    load_duration: int = 0
    devices: list[DeviceUse] = []


class LoadFailed(msgspec.Struct, tag="load_failed", array_like=True, gc=False):
    message: str


class Accepted(msgspec.Struct, tag="accepted", array_like=True, gc=False):
    id: int


class Rejected(msgspec.Struct, tag="rejected", array_like=True, gc=False):
    """``submit`` raised InvalidRequestError (or another error) in the runner."""

    id: int
    message: str
    invalid: bool = True


class EventFrame(msgspec.Struct, tag="event", array_like=True, gc=False):
    id: int
    event: Event


class Progress(msgspec.Struct, tag="progress", array_like=True, gc=False):
    """The engine finished a decode step (sent at most once a second while it has work, and once
    when it goes idle): a step that evaluates a long prompt emits no event, and the server's
    watchdog must still see life. ``kv_used``: KV cache cells its sequences hold (for /metrics)."""

    kv_used: int = 0


ToRunner = Union[LoadSpec, Submit, Cancel, Shutdown]
FromRunner = Union[Ready, LoadFailed, Accepted, Rejected, EventFrame, Progress]


class FrameError(RuntimeError):
    """The byte stream does not hold valid frames."""


class FrameCodec:
    """Encodes outgoing frames and decodes incoming ones of one direction."""

    def __init__(self, incoming: type) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[object] = msgspec.msgpack.Decoder(incoming)

    def encode(self, message: msgspec.Struct) -> bytes:
        body = self._encoder.encode(message)
        return _HEADER.pack(len(body)) + body

    def decode(self, body: bytes) -> object:
        try:
            return self._decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise FrameError(f"invalid frame: {exc}") from None


def frame_size(buffer: bytes | bytearray, offset: int = 0) -> int:
    """The body size a frame header at ``offset`` announces; FrameError if it cannot be right."""
    (size,) = _HEADER.unpack_from(buffer, offset)
    if size > MAX_FRAME:
        raise FrameError(f"frame of {size} bytes is too large")
    return int(size)


class FrameWriter:
    """Whole frames onto a (non-blocking) socket from any thread.

    The runner queues event frames on the engine's loop thread while a step
    runs and flushes them once at its end (one write, one wake-up of the
    server, for every slot's token); handshake answers go at once from its
    event loop. One lock keeps frames whole and in order. A flush waits while
    the peer's buffer is full (the peer is always reading); a failed one
    raises OSError, and every later send or flush raises BrokenPipeError.
    """

    def __init__(self, sock: socket.socket, codec: FrameCodec) -> None:
        self._sock = sock
        self._codec = codec
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        self.broken = False

    def queue(self, message: msgspec.Struct) -> None:
        """Add a frame to the next flush."""
        with self._lock:
            self._pending.append(self._codec.encode(message))

    def flush(self) -> None:
        """Write every queued frame."""
        with self._lock:
            if not self._pending:
                return
            if self.broken:
                self._pending.clear()
                raise BrokenPipeError("the connection to the server is gone")
            view = memoryview(b"".join(self._pending))
            self._pending.clear()
            try:
                while view:
                    try:
                        view = view[self._sock.send(view):]
                    except BlockingIOError:
                        select.select((), (self._sock,), ())
            except OSError:
                self.broken = True
                raise

    def send(self, message: msgspec.Struct) -> None:
        """Write a frame now (after anything queued)."""
        self.queue(message)
        self.flush()


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The body of the next frame; None at a clean end of stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameError("stream ended inside a frame header") from None
        return None
    size = frame_size(header)
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise FrameError("stream ended inside a frame") from None


class FrameProtocol(asyncio.Protocol):
    """Splits incoming bytes into frames inside the event loop's read
    callback: a message is handled without waking a reader task, and
    however many frames one read brought are handled in one go."""

    def __init__(self, codec: FrameCodec, on_message: Callable[[object], None],
                 on_lost: Callable[[BaseException | None], None]) -> None:
        self._codec = codec
        self._on_message = on_message
        self._on_lost = on_lost
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start, end = 0, len(buffer)
        try:
            while end - start >= _HEADER.size:
                stop = start + _HEADER.size + frame_size(buffer, start)
                if stop > end:
                    break
                message = self._codec.decode(bytes(buffer[start + _HEADER.size:stop]))
                start = stop
                self._on_message(message)
        except FrameError as exc:
            buffer.clear()
            if self.transport is not None:
                self.transport.abort()  # connection_lost follows, with exc
            self._on_lost(exc)
            self._on_lost = _ignore_loss
            return
        del buffer[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._buffer and exc is None:
            exc = FrameError("stream ended inside a frame")
        self._on_lost(exc)
        self._on_lost = _ignore_loss


def _ignore_loss(exc: BaseException | None) -> None:
    pass


def server_codec() -> FrameCodec:
    """The server's side: sends ToRunner, reads FromRunner."""
    return FrameCodec(FromRunner)  # type: ignore[arg-type]


def runner_codec() -> FrameCodec:
    """The runner's side: sends FromRunner, reads ToRunner."""
    return FrameCodec(ToRunner)  # type: ignore[arg-type]
