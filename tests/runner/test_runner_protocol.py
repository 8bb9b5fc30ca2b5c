"""Frames and the memory estimate, without starting a process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pyllama.engine import Chunk, Done, GenerateRequest, SamplingOptions
from pyllama.runner import describe_exit, estimate_memory
from pyllama.runner.memory import available_ram
from pyllama.runner.protocol import (
    EventFrame,
    FrameError,
    FrameProtocol,
    FrameWriter,
    LoadSpec,
    Ready,
    Submit,
    read_frame,
    runner_codec,
    server_codec,
)


def _frames(data: bytes) -> list[object]:
    async def main() -> list[object]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        codec = runner_codec()
        out = []
        while (body := await read_frame(reader)) is not None:
            out.append(codec.decode(body))
        return out

    return asyncio.run(main())


def test_frames_round_trip_in_both_directions() -> None:
    server, runner = server_codec(), runner_codec()
    request = GenerateRequest(prompt=[1, 2, 3], options=SamplingOptions(temperature=0, stop=["\n"]))
    sent = [LoadSpec(model="/m.gguf", n_ctx=512), Submit(7, request)]
    assert _frames(b"".join(server.encode(m) for m in sent)) == sent
    for message in (Ready(pid=1, n_ctx=512, n_ctx_slot=512, n_parallel=1, n_ctx_train=8192, model_size=9, memory=10),
                    EventFrame(7, Chunk(text="hé", tokens=[5])), EventFrame(7, Done(done_reason="stop"))):
        body = runner.encode(message)[4:]
        assert server.decode(body) == message


def test_broken_streams_raise_frame_errors() -> None:
    frame = server_codec().encode(LoadSpec(model="/m.gguf", n_ctx=512))
    with pytest.raises(FrameError, match="inside a frame"):
        _frames(frame[:-1])
    with pytest.raises(FrameError, match="header"):
        _frames(frame[:2])
    with pytest.raises(FrameError, match="too large"):
        _frames(b"\xff\xff\xff\xff")
    with pytest.raises(FrameError, match="invalid frame"):
        _frames(b"\x01\x00\x00\x00\xc1")


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[object] = []
        self.lost: list[BaseException | None] = []
        self.protocol = FrameProtocol(server_codec(), self.messages.append, self.lost.append)


def test_protocol_splits_frames_however_the_bytes_arrive() -> None:
    codec = runner_codec()
    sent = [EventFrame(i, Chunk(text=f"t{i}", tokens=[i])) for i in range(5)] + [EventFrame(4, Done("stop"))]
    data = b"".join(codec.encode(m) for m in sent)
    for cut in (1, 3, 7, len(data)):  # one byte at a time ... everything in one read
        rec = _Recorder()
        for at in range(0, len(data), cut):
            rec.protocol.data_received(data[at:at + cut])
        rec.protocol.connection_lost(None)
        assert rec.messages == sent
        assert rec.lost == [None]


def test_protocol_reports_broken_streams_once() -> None:
    frame = runner_codec().encode(EventFrame(1, Done("stop")))
    rec = _Recorder()
    rec.protocol.data_received(frame[:-2])
    rec.protocol.connection_lost(None)
    rec.protocol.connection_lost(None)
    assert rec.messages == [] and len(rec.lost) == 1
    assert isinstance(rec.lost[0], FrameError) and "inside a frame" in str(rec.lost[0])

    for garbage, words in ((b"\xff\xff\xff\xff", "too large"), (b"\x01\x00\x00\x00\xc1", "invalid frame")):
        rec = _Recorder()
        rec.protocol.data_received(frame + garbage + frame)
        rec.protocol.connection_lost(None)
        assert rec.messages == [EventFrame(1, Done("stop"))]  # frames before the garbage still count
        assert len(rec.lost) == 1 and words in str(rec.lost[0])


def test_writer_sends_whole_frames_from_many_threads_and_fails_cleanly() -> None:
    import socket
    import threading

    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    writer = FrameWriter(ours, runner_codec())
    big = EventFrame(99, Chunk(text="x" * 300_000))  # more than the socket buffer: the writer must wait

    def send_many(worker: int) -> None:
        for i in range(50):
            writer.send(EventFrame(worker, Chunk(text=str(i))) if i != 25 else big)

    threads = [threading.Thread(target=send_many, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    rec = _Recorder()
    received = 0
    while received < 4 * 50:
        rec.protocol.data_received(theirs.recv(1 << 16))
        received = len(rec.messages)
    for t in threads:
        t.join()
    for w in range(4):
        mine = [m.event.text for m in rec.messages if m.id == w]  # type: ignore[attr-defined]
        assert mine == [str(i) for i in range(25)] + [str(i) for i in range(26, 50)]
    assert sum(1 for m in rec.messages if m == big) == 4

    # Queued frames go out together at the next flush, after nothing else.
    writer.queue(EventFrame(7, Chunk(text="a")))
    writer.queue(EventFrame(7, Chunk(text="b")))
    theirs.setblocking(False)
    with pytest.raises(BlockingIOError):
        theirs.recv(1)
    writer.flush()
    theirs.setblocking(True)
    rec.messages.clear()
    while len(rec.messages) < 2:
        rec.protocol.data_received(theirs.recv(1 << 16))
    assert rec.messages == [EventFrame(7, Chunk(text="a")), EventFrame(7, Chunk(text="b"))]

    theirs.close()
    with pytest.raises(OSError):
        writer.send(EventFrame(1, Done("stop")))
    assert writer.broken
    with pytest.raises(BrokenPipeError):
        writer.send(EventFrame(1, Done("stop")))
    ours.close()


def test_memory_estimate_follows_the_gguf_shape(smollm2: Path) -> None:
    # SmolLM2-135M: 30 layers, 3 KV heads of 64 -> 30 x n_ctx x (192 + 192) x 2 bytes.
    small = estimate_memory(smollm2, 1024)
    assert small.weights == smollm2.stat().st_size
    assert small.kv_cache == 30 * 1024 * 384 * 2
    assert small.compute > 512 * 49152 * 4  # one micro-batch of logits at least
    assert estimate_memory(smollm2, 4096).kv_cache == 4 * small.kv_cache
    assert estimate_memory(smollm2, 1024, type_k="q8_0", type_v="q8_0").kv_cache < small.kv_cache
    with pytest.raises(ValueError, match="unsupported KV cache type"):
        estimate_memory(smollm2, 1024, type_k="q3")
    assert available_ram() > 0


def test_exit_descriptions() -> None:
    assert describe_exit(-9) == "signal 9 (SIGKILL)"
    assert describe_exit(1) == "exit status 1"
