"""RPC servers for tests: ``pyllama rpc-server`` processes and llama.cpp's
own ``ggml-rpc-server`` (built from the same tree on first use), on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pyllama.rpc.wire import RpcUnreachableError, probe
from serverutil import SRC_DIR, _stop, free_port

ROOT = Path(__file__).resolve().parents[2]
RPC_MAJOR = 7  # ggml-rpc.h's RPC_PROTO_MAJOR_VERSION at the pinned tree (checked in test_rpc_native.py)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYLLAMA_", "OLLAMA_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC_DIR), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def wait_rpc(endpoint: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Until the server answers a probe (or its process ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"RPC server exited with {proc.returncode}:\n{out[-4000:]}")
        try:
            probe(endpoint, RPC_MAJOR, timeout=2.0)
            return
        except RpcUnreachableError:
            time.sleep(0.1)
    raise TimeoutError(f"RPC server {endpoint} did not answer within {timeout}s")


@contextmanager
def rpc_server(command: Sequence[str] | None = None, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``pyllama rpc-server`` (or ``command`` taking ``-p PORT``) with one thread; yields (host:port, process)."""
    port = port or free_port()
    cmd = [*(command or (sys.executable, "-m", "pyllama", "rpc-server")), "-p", str(port), "-t", "1"]
    proc = subprocess.Popen(cmd, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    endpoint = f"127.0.0.1:{port}"
    try:
        wait_rpc(endpoint, proc)
        yield endpoint, proc
    finally:
        _stop(proc)


def llama_tool(target: str) -> Path:
    """llama.cpp's ``target`` built in this checkout's build dir (same tree, same flags)."""
    build = sorted((ROOT / "build").glob(f"cp{sys.version_info.major}{sys.version_info.minor}*"))
    assert build, "no build directory under build/: run `bash ci/setup.sh` first"
    binary = build[0] / "bin" / target
    if not binary.exists():
        subprocess.run(["cmake", "--build", str(build[0]), "--target", target, "-j", "2"], check=True,
                       stdout=subprocess.DEVNULL, timeout=1800)
    return binary
