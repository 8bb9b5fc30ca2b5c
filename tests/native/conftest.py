"""Fixtures for the native-layer tests (the model path comes from the
top-level conftest). Contexts here use one thread: ggml's workers spin, so
two threads on a busy 2-core machine are far slower than one."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def model(model_path):
    from pyllama import _native

    return _native.Model(model_path)
