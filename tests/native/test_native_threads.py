"""The GIL is released during decode; abort() works from another thread."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from pyllama import _native


def test_python_thread_runs_while_decode_works(model):
    """While a worker is inside decode, the main thread keeps executing
    Python. If decode held the GIL, the main thread could never observe the
    worker's in-decode flag set (it is set just before the call)."""
    ctx = _native.Context(model, n_ctx=2048, n_batch=512, n_threads=1)
    batch = _native.Batch(512)
    batch.add_sequence(np.full(500, 28, dtype=np.int32), 0, 0)
    in_decode = threading.Event()
    done = threading.Event()

    def worker():
        for _ in range(3):
            ctx.seq_rm(0)
            in_decode.set()
            ctx.decode(batch)
            in_decode.clear()
        done.set()

    t = threading.Thread(target=worker)
    observed = 0
    t.start()
    while not done.is_set():
        if in_decode.is_set():
            observed += 1
    t.join()
    assert observed > 1000, f"main thread ran only {observed} times during decode"


def test_abort_from_another_thread(model):
    ctx = _native.Context(model, n_ctx=4096, n_batch=2048, n_ubatch=512, n_threads=1)
    batch = _native.Batch(2048)
    batch.add_sequence(np.full(2048, 28, dtype=np.int32), 0, 0)
    ctx.abort()  # requested before the decode starts: it stops immediately
    with pytest.raises(_native.DecodeAbortedError) as info:
        ctx.decode(batch)
    assert info.value.code == 2
    # The request is consumed: the next decode runs to completion.
    ctx.seq_rm(0)
    small = _native.Batch(8)
    small.add_sequence([1, 28, 29], 0, 0)
    ctx.decode(small)
    assert ctx.seq_pos_max(0) == 2

    ctx.seq_rm(0)
    timer = threading.Timer(0.05, ctx.abort)
    timer.start()
    try:
        ctx.decode(batch)
        aborted = False
    except _native.DecodeAbortedError:
        aborted = True
    timer.join()
    if not aborted:
        # The decode finished before the timer fired: the flag is left for
        # the next decode, which must then abort.
        ctx.seq_rm(0)
        with pytest.raises(_native.DecodeAbortedError):
            ctx.decode(batch)
    ctx.seq_rm(0)
    ctx.decode(small)
    assert np.isfinite(ctx.logits(-1)).all()
