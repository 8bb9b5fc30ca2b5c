"""Start real servers for integration tests: pyllama itself and a CNCF registry.

Reusable by every integration test: ``start_server(env)`` runs
``uvicorn --factory pyllama.server.app:create_app`` on a free loopback port
with the given environment, waits until it answers, and stops it on exit.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

REGISTRY_BINARY = "/usr/bin/docker-registry"
SRC_DIR = Path(__file__).resolve().parent.parent / "src"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers (any status) or the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"process exited with {proc.returncode}:\n{out[-4000:]}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without PYLLAMA_*/OLLAMA_* settings (they would leak into tests), pyllama
    importable from the checkout, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYLLAMA_", "OLLAMA_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC_DIR), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


@contextmanager
def start_server(env: Mapping[str, str] | None = None, port: int | None = None) -> Iterator[str]:
    """Run pyllama's app in a subprocess; yield its base URL (``http://127.0.0.1:N``)."""
    port = port or free_port()
    full_env = clean_env(**(env or {}))
    full_env.setdefault("PYLLAMA_HOST", f"127.0.0.1:{port}")
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "pyllama.server.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/", proc)
        yield base
    finally:
        _stop(proc)


@contextmanager
def start_registry(root: Path, extra_config: str = "") -> Iterator[str]:
    """Run the CNCF distribution registry on a loopback port; yield ``127.0.0.1:N``.

    ``extra_config`` is appended to its YAML config (an ``auth:`` section, say)."""
    binary = shutil.which("docker-registry") or REGISTRY_BINARY
    port = free_port()
    config = root / "config.yml"
    storage = root / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {storage}\n"
        "  delete:\n    enabled: true\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
        + extra_config
    )
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/", proc)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)


def registry_available() -> bool:
    return Path(REGISTRY_BINARY).is_file() or shutil.which("docker-registry") is not None
