"""The wheel as a user gets it: `pip wheel .` builds one that installs into a
fresh virtual environment, answers `pyllama --version` and serves a real
generation from there, and is built for a portable CPU baseline (x86-64-v3:
AVX2/FMA/F16C/BMI2, nothing newer), not for the build machine.

The wheel is built without build isolation into the persistent build
directory of the editable install (build/{wheel_tag}), so after
`ci/setup.sh` this is an incremental build. The fresh venv gets the runtime
dependencies from the package index pip is configured with (the same one
`ci/setup.sh` uses; pip's cache makes it quick).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

import pyllama
from pyllama.bundled import bundled_gguf
from serverutil import _stop, free_port, wait_http

ROOT = Path(__file__).resolve().parent.parent
X86_64 = sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64")

# Instruction sets beyond the x86-64-v3 baseline, as objdump spells the
# registers or mnemonics that only they have: AVX-512 (zmm/k registers),
# AVX-VNNI / AVX512-VNNI (vpdpbusd...), AMX (tile instructions).
BEYOND_BASELINE = re.compile(r"%zmm\d+|%k[1-7]\b|\bvpdpbu?s?ds?\b|\btdpb|\btileloadd")


def run(cmd: list[str | Path], env: Mapping[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure show its output, not just the exit code."""
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited with {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def venv_env(**extra: str) -> dict[str, str]:
    """An environment in which only the fresh venv's pyllama can be imported."""
    drop = ("PYLLAMA_", "OLLAMA_", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel .` as a packager runs it, reusing the editable build's directory."""
    out = tmp_path_factory.mktemp("wheelhouse")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "-w", out, ROOT],
        cwd=ROOT, timeout=3000)
    wheels = list(out.glob("pyllama-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh venv (no system site-packages, not the dev .venv) with only the wheel and its dependencies."""
    path = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", path])
    run([path / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel],
        env=venv_env(), cwd=path, timeout=1200)
    return path


def test_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    native = [n for n in names if re.fullmatch(r"pyllama/_native\..*\.so", n)]
    assert len(native) == 1, names
    assert "pyllama/py.typed" in names and "pyllama/_native.pyi" in names
    assert "pyllama/bundled.py" in names and any(n.startswith("pyllama/templates/") for n in names)
    # The web chat's static files (served at /ui/) ship as they are in the source tree.
    ui_files = {f"pyllama/ui/{p.name}" for p in (ROOT / "src" / "pyllama" / "ui").iterdir() if p.is_file()}
    assert "pyllama/ui/index.html" in ui_files and ui_files <= set(names), ui_files - set(names)
    # llama.cpp is linked into the module: no other shared objects, no headers.
    assert not [n for n in names if n.endswith((".h", ".a")) or (".so" in n and n not in native)]


def test_version(venv: Path, tmp_path: Path) -> None:
    out = run([venv / "bin" / "pyllama", "--version"], env=venv_env(), cwd=tmp_path)
    assert out.stdout.strip() == f"pyllama version is {pyllama.__version__}"


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(not X86_64, reason="the baseline checked here is x86-64's")
def test_built_for_the_x86_64_v3_baseline(venv: Path, tmp_path: Path) -> None:
    """The installed module reports exactly the baseline's instruction sets,
    and its machine code uses AVX2 but nothing beyond (no AVX-512, VNNI, AMX),
    whatever CPU built it."""
    code = "import json, pyllama._native as n; print(json.dumps([n.__file__, n.system_info()]))"
    file, info = json.loads(run([venv / "bin" / "python", "-c", code], env=venv_env(), cwd=tmp_path).stdout)
    assert Path(file).is_relative_to(venv), file
    for feature in ("AVX = 1", "AVX2 = 1", "FMA = 1", "F16C = 1", "BMI2 = 1"):
        assert feature in info, info
    assert not re.search(r"AVX512|AVX_VNNI|AMX", info), info
    assert {"avx2", "fma", "f16c", "bmi2"} <= cpu_flags()  # else the import above could not have worked
    if shutil.which("objdump") is None:
        pytest.skip("objdump (binutils) is not installed")
    asm = run(["objdump", "-d", "--no-show-raw-insn", file]).stdout
    assert "%ymm" in asm  # AVX2 code is there: the check below sees instructions
    beyond = sorted(set(BEYOND_BASELINE.findall(asm)))
    assert not beyond, f"instructions beyond x86-64-v3: {beyond[:20]}"


@pytest.fixture
def served(venv: Path, tmp_path: Path) -> Iterator[str]:
    """`pyllama serve` from the fresh venv on a free loopback port; yields host:port."""
    host = f"127.0.0.1:{free_port()}"
    env = venv_env(PYLLAMA_HOST=host, PYLLAMA_MODELS=str(tmp_path / "models"), PYLLAMA_NUM_THREADS="1",
                   HOME=str(tmp_path))
    proc = subprocess.Popen([venv / "bin" / "pyllama", "serve"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://{host}/", proc)
        yield host
    finally:
        _stop(proc)


def test_installed_wheel_serves_a_generation(venv: Path, served: str, tmp_path: Path) -> None:
    env = venv_env(PYLLAMA_HOST=served, HOME=str(tmp_path))
    (tmp_path / "Modelfile").write_text(f"FROM {bundled_gguf()}\nPARAMETER temperature 0\nPARAMETER num_predict 8\n")
    run([venv / "bin" / "pyllama", "create", "smollm2:135m", "-f", "Modelfile"], env=env, cwd=tmp_path)
    answer = run([venv / "bin" / "pyllama", "run", "smollm2:135m", "hi"], env=env, cwd=tmp_path, timeout=300)
    assert answer.stdout.strip(), answer
    reply = httpx.post(f"http://{served}/api/generate", timeout=300,
                       json={"model": "smollm2:135m", "prompt": "Say hello.", "stream": False,
                             "options": {"num_predict": 8}}).json()
    assert reply["response"].strip() and 0 < reply["eval_count"] <= 8, reply
    page = httpx.get(f"http://{served}/ui/")
    assert page.status_code == 200 and '<script type="module" src="app.js">' in page.text
    assert httpx.get(f"http://{served}/ui/app.js").headers["content-type"].startswith("text/javascript")


def test_sdist_carries_llama_cpp(tmp_path: Path) -> None:
    """The sdist builds offline: it holds the pinned llama.cpp tree that
    .gitignore hides, without the parts no build reads (tests' vocab GGUFs)."""
    # scikit-build-core's PEP 517 hook, as `python -m build --sdist` calls it.
    code = "import sys; from scikit_build_core.build import build_sdist; print(build_sdist(sys.argv[1]))"
    name = run([sys.executable, "-c", code, tmp_path], cwd=ROOT).stdout.strip().splitlines()[-1]
    with tarfile.open(tmp_path / name) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    for needed in ("CMakeLists.txt", "pyproject.toml", "src/_native/_native.pyx", "src/pyllama/__init__.py",
                   "ci/fetch_llama_cpp.sh", "llama.cpp/CMakeLists.txt", "llama.cpp/LICENSE",
                   "llama.cpp/include/llama.h", "llama.cpp/ggml/src/ggml-cpu/arch/x86/cpu-feats.cpp",
                   "llama.cpp/common/CMakeLists.txt", "llama.cpp/vendor/nlohmann/json.hpp"):
        assert needed in members, needed
    assert not [m for m in members if m.endswith(".gguf") or m.startswith(("build/", ".venv/", "llama.cpp/.git/"))]
    assert (tmp_path / name).stat().st_size < 40 << 20


def test_the_wheel_has_the_rpc_back_end_and_no_rdma_dependency(venv: Path, tmp_path: Path) -> None:
    """GGML_RPC=ON is in the default build (docs/rpc.md), plain TCP: the module needs no libibverbs."""
    code = "import json, pyllama._native as n; print(json.dumps([n.__file__, n.supports_rpc()]))"
    path, rpc = json.loads(run([venv / "bin" / "python", "-c", code], env=venv_env(), cwd=tmp_path).stdout)
    assert rpc is True
    needed = run(["objdump", "-p", path], cwd=tmp_path).stdout
    assert "NEEDED" in needed and "ibverbs" not in needed
    usage = run([venv / "bin" / "pyllama", "rpc-server", "--help"], env=venv_env(), cwd=tmp_path).stdout
    assert "pyllama rpc-server [flags]" in usage
