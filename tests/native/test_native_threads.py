"""The GIL is released during decode; abort() works from another thread."""
from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from pyllama import _native


def test_python_thread_runs_while_decode_works(model):
    """While a worker is inside decode, the main thread runs Python.

    Forced thread switches are turned off (a switch interval far longer than
    the test), so the main thread gets the GIL only when the worker gives it
    up. The main thread marks that it ran; right after each decode returns,
    the worker looks at the mark. If decode let the GIL go, the main thread
    ran during it and the worker sees the mark; if decode held the GIL, the
    worker never gives it up until it exits and sees no mark after any of
    its decodes. No clock is read."""
    ctx = _native.Context(model, n_ctx=2048, n_batch=512, n_threads=1)
    batch = _native.Batch(512)
    batch.add_sequence(np.full(500, 28, dtype=np.int32), 0, 0)
    main_ran = threading.Event()
    seen: list[bool] = []

    def worker():
        for _ in range(20):  # chances for the OS to schedule the main thread
            ctx.seq_rm(0)
            ctx.decode(batch)
            if main_ran.is_set():
                seen.append(True)
                return
        seen.append(False)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        t = threading.Thread(target=worker)
        t.start()
        main_ran.set()
        t.join()
    finally:
        sys.setswitchinterval(interval)
    assert seen == [True], "the main thread could not run while decode worked: decode holds the GIL"


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
