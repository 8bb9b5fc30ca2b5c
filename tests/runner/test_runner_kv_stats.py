"""The KV cache figure a runner puts in its Progress frames (for /metrics)."""

from __future__ import annotations

from pathlib import Path

from pyllama import _native
from pyllama.runner.process import kv_cells_used
from pyllama.runner.protocol import Progress, runner_codec, server_codec


def test_counts_the_cells_each_sequence_holds(model_path: Path) -> None:
    model = _native.Model(model_path)
    ctx = _native.Context(model, n_ctx=512, n_batch=64, n_seq_max=2, n_threads=1)
    assert kv_cells_used(ctx) == 0
    first, second = model.tokenize("The quick brown fox"), model.tokenize("Hello there, how are you today?")
    batch = _native.Batch(64, n_seq_max=1)
    batch.add_sequence(first, 0, 0)
    batch.add_sequence(second, 0, 1)
    ctx.decode(batch)
    assert kv_cells_used(ctx) == len(first) + len(second)
    ctx.seq_rm(1, -1, -1)
    assert kv_cells_used(ctx) == len(first)


class _NoCache:
    """What a context without a KV cache (a non-causal embedding model's) answers."""

    n_seq_max = 4

    def seq_pos_max(self, seq: int) -> int:
        raise _native.LlamaError("this context has no memory (KV cache)")

    seq_pos_min = seq_pos_max


def test_a_context_without_a_cache_holds_nothing() -> None:
    assert kv_cells_used(_NoCache()) == 0  # type: ignore[arg-type]


def test_progress_carries_it() -> None:
    frame = runner_codec().encode(Progress(1234))
    assert server_codec().decode(frame[4:]) == Progress(1234)
