"""Helpers for the image tests: small encoded images and a reference run of
the same chunks through the low-level binding (libmtmd + Batch)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np

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
    out: list[int] = []
    rows: list[np.ndarray] = []
    idx, n_prompt = len(batch) - 1, pos
    for _ in range(n):
        logits = ctx.logits(idx).copy()
        tok = int(np.argmax(logits))
        rows.append(logits)
        if model.is_eog(tok):
            break
        out.append(tok)
        batch.clear()
        idx = batch.add(tok, pos, 0, True)
        pos += 1
        ctx.decode(batch)
    return out, rows, n_prompt
