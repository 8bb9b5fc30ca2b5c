"""CLI tests drive `python -m pyllama ...` as a user types it, against a
server started with `pyllama serve`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cliutil import CLI, clean_env
from serverutil import _stop, free_port, wait_http


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CLI]:
    root = tmp_path_factory.mktemp("cli")
    port = free_port()
    host = f"127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "pyllama", "serve", "--models", str(root / "models")],
                            env=clean_env(PYLLAMA_HOST=host, PYLLAMA_NUM_THREADS="1", HOME=str(root)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://{host}/", proc)
        yield CLI(host, root)
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def smol(served: CLI, model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """`smollm2:135m` created from a Modelfile through `pyllama create`."""
    work = tmp_path_factory.mktemp("modelfile")
    (work / "Modelfile").write_text(f"FROM {model_path}\nPARAMETER temperature 0\nPARAMETER num_predict 48\nSYSTEM You are terse.\n")
    result = served("create", "smollm2:135m", "-f", str(work / "Modelfile"))
    assert result.returncode == 0, result.stderr
    return "smollm2:135m"
