"""Fixtures for the engine tests: the SmolLM2 model and small engines.

Engines here use tiny contexts and ONE thread: with ggml's spinning
workers, two threads on a busy 2-core machine run 40x slower than one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pyllama import _native
from pyllama.engine import Engine


@pytest.fixture(scope="session")
def engine_model(model_path: Path) -> _native.Model:
    return _native.Model(model_path)


@pytest.fixture(scope="session")
def eog_ban(engine_model: _native.Model) -> dict[int, float]:
    """logit_bias that forbids every end-of-generation token, for tests that
    need generation to run to num_predict."""
    return {t: float("-inf") for t in range(engine_model.n_vocab) if engine_model.is_eog(t)}


@pytest.fixture(scope="module")
def engine2(engine_model: _native.Model) -> Iterator[Engine]:
    """Two slots of 512 tokens."""
    with Engine(engine_model, n_ctx=1024, n_parallel=2, n_batch=256, n_threads=1) as engine:
        yield engine
