"""Helpers for the LoRA tests: a reference greedy run through the low-level
binding, and the comparison the batching tests use (tokens equal, or the
first difference is a near-tie of the reference's top two logits)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pyllama import _native
from pyllama.engine import Chunk

NEAR_TIE = 1e-3
PROMPT = "The capital of France is"


def reference_greedy(model: _native.Model, adapters: Sequence[tuple[_native.LoraAdapter, float]], tokens: Sequence[int],
                     n: int, *, n_ctx: int = 512, n_seq_max: int = 1) -> tuple[list[int], list[np.ndarray]]:
    """Greedy tokens (up to an end-of-generation token) with ``adapters`` set
    on a fresh context, and the logits row each pick came from."""
    ctx = _native.Context(model, n_ctx=n_ctx, n_seq_max=n_seq_max, n_threads=1)
    ctx.set_lora(adapters)
    batch = _native.Batch(ctx.n_batch, n_seq_max=n_seq_max)
    batch.add_sequence(list(tokens), 0, 0)
    ctx.decode(batch)
    return greedy_continuation(model, ctx, batch, len(batch) - 1, len(tokens), n)


def greedy_continuation(model: _native.Model, ctx: _native.Context, batch: _native.Batch, idx: int, pos: int,
                        n: int) -> tuple[list[int], list[np.ndarray]]:
    """Greedy picks from the logits at ``idx`` of the last decode, sequence 0 continuing at ``pos``."""
    out: list[int] = []
    rows: list[np.ndarray] = []
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
    return out, rows


def top2_gap(logits: np.ndarray) -> float:
    top = np.partition(logits, -2)[-2:]
    return float(abs(top[1] - top[0]))


def assert_same_greedy(got: Sequence[int], want: Sequence[int], rows: Sequence[np.ndarray]) -> None:
    """``got`` is ``want``, except that a near-tie in the reference may flip a pick."""
    for step, (a, b) in enumerate(zip(got, want)):
        if a != b:
            gap = top2_gap(rows[step])
            assert gap < NEAR_TIE, f"differs at step {step} ({a} vs {b}) with a top-2 gap of {gap}"
            return
    assert len(got) == len(want), (got, want)


def lora_for_tiny(path: Path, tmp: Path) -> Path:
    """An adapter that fits ``tests/ggufutil.write_tiny_llama``'s model, not SmolLM2."""
    from fixtures.make_tiny_models import write_lora

    return write_lora(tmp, path)


def assert_same_run(solo: Sequence[Chunk], mixed: Sequence[int]) -> None:
    """Engine output ``mixed`` is the output ``solo`` (chunks with top-2
    logprobs) gave, except that a near-tie may flip a pick."""
    lps = [lp for c in solo for lp in c.logprobs]
    for lp, tok in zip(lps, mixed):
        if lp.token != tok:
            assert lp.top[0].logprob - lp.top[1].logprob < NEAR_TIE, (lp, tok)
            return
    assert len(lps) == len(mixed), (lps, mixed)
