"""Shared fixtures: the test model, a temporary store, servers and a registry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.make_tiny_models import smollm2_path
from serverutil import registry_available, start_registry, start_server


def _strict_skips() -> bool:
    """Under CI every dependency is installed by ci/setup.sh, so a skip means
    a missing install step: it must turn the run red, not stay green."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _fail_skip(report: Any) -> None:
    if not report.skipped or hasattr(report, "wasxfail") or not _strict_skips():
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped while CI=true (is an install step missing from ci/setup.sh?): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _fail_skip(outcome.get_result())  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _fail_skip(outcome.get_result())  # type: ignore[attr-defined]


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
def mmproj_path(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Path:
    """A random-weight llava-style projector for SmolLM2: 32x32 images, 16 image tokens
    (``tests/fixtures/make_tiny_models.py mmproj``)."""
    from fixtures.make_tiny_models import write_mmproj

    return write_mmproj(tmp_path_factory.mktemp("mmproj") / "mmproj.gguf", model_path)


@pytest.fixture(scope="session")
def lora_path(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Path:
    """A LoRA adapter for SmolLM2 that visibly changes its greedy output
    (``tests/fixtures/make_tiny_models.py lora``)."""
    from fixtures.make_tiny_models import write_lora

    return write_lora(tmp_path_factory.mktemp("lora") / "lora.gguf", model_path)



@pytest.fixture(scope="session")
def reranker_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT reranker (``tests/fixtures/make_tiny_models.py reranker``):
    rank pooling, llama.cpp's default pair layout."""
    from fixtures.make_tiny_models import write_reranker

    return write_reranker(tmp_path_factory.mktemp("reranker") / "reranker.gguf")


@pytest.fixture(scope="session")
def reranker_template_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same reranker with a ``tokenizer.chat_template.rerank``."""
    from fixtures.make_tiny_models import write_reranker
    from rerankutil import RERANK_TEMPLATE

    return write_reranker(tmp_path_factory.mktemp("reranker") / "reranker-template.gguf",
                          rerank_template=RERANK_TEMPLATE)


@pytest.fixture(scope="session")
def draft_path(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Path:
    """A draft for SmolLM2 (its vocabulary, fewer blocks): greedy drafts partly
    accepted (``tests/fixtures/make_tiny_models.py draft``)."""
    from fixtures.make_tiny_models import write_draft

    return write_draft(tmp_path_factory.mktemp("draft") / "draft.gguf", model_path)
