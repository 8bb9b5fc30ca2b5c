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
