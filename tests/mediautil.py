"""Helpers for the image tests: small encoded images and a reference run of
the same chunks through the low-level binding (libmtmd + Batch)."""

from __future__ import annotations

import io
import struct
import wave
import zlib
from collections.abc import Sequence

import numpy as np

from lorautil import greedy_continuation
from pyllama import _native

IMAGE_TOKENS = 16  # the fixture projector: 32x32 images in 8x8 patches


def png_bytes(rgb: np.ndarray) -> bytes:
    """A minimal truecolour PNG of an (h, w, 3) uint8 array."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def picture(seed: int) -> bytes:
    """A 32x32 PNG of noise: different seeds, different pictures."""
    return png_bytes(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8))


def reference_greedy(model: _native.Model, projector: _native.Projector, prompt: str, images: Sequence[bytes],
                     n: int, *, n_ctx: int = 1024, n_seq_max: int = 1) -> tuple[list[int], list[np.ndarray], int]:
    """Greedy tokens for ``prompt`` (media markers) on a fresh context, decoded chunk by chunk as
    docs/bindings.md shows; the logits row of each pick; the prompt's cell count."""
    ctx = _native.Context(model, n_ctx=n_ctx, n_seq_max=n_seq_max, n_threads=1)
    chunks = projector.tokenize(prompt, [projector.bitmap_from_bytes(i) for i in images])
    batch = _native.Batch(ctx.n_batch)
    pos = 0
    for i, chunk in enumerate(chunks):
        batch.clear()
        last = i == len(chunks) - 1
        if chunk.is_media:
            batch.add_embeddings(projector.encode(chunk), pos, 0, logits_last=last)
            ctx.decode(batch, non_causal=projector.non_causal(chunk))
        else:
            batch.add_sequence(chunk.tokens, pos, 0, logits_last=last)
            ctx.decode(batch)
        pos += chunk.n_pos
    out, rows = greedy_continuation(model, ctx, batch, len(batch) - 1, pos, n)
    return out, rows, pos


def wav_bytes(seconds: float = 0.5, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV of a 440 Hz tone."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * 440 * t) * 20000).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()
