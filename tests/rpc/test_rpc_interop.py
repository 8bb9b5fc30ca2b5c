"""Both directions with llama.cpp's own tools from the same tree: pyllama
serving a model split over llama.cpp's ``ggml-rpc-server``, and llama.cpp's
``llama-completion --rpc`` computing on a ``pyllama rpc-server``. Greedy
output must match the unsplit run each time."""

from __future__ import annotations

import subprocess
from contextlib import ExitStack
from pathlib import Path

from rpcutil import clean_env, llama_tool, rpc_server
from test_rpc_serving import SPLIT, generate, loaded_devices, split_server

PROMPT = "The three primary colours are"


def test_pyllama_splits_a_model_over_llama_cpps_rpc_server(models_dir: Path, model_path: Path) -> None:
    binary = llama_tool("ggml-rpc-server")
    with ExitStack() as stack:
        endpoint, proc = stack.enter_context(rpc_server([str(binary)]))
        base = stack.enter_context(split_server(models_dir, model_path, [endpoint]))
        split = generate(base, SPLIT)
        assert [d["name"] for d in loaded_devices(base) if d["description"] == endpoint] == ["RPC0"]
        unsplit = generate(base, {**SPLIT, "num_gpu": 0})
    assert split["response"] == unsplit["response"] and split["eval_count"] == 24


def _complete(binary: Path, model_path: Path, *extra: str) -> str:
    result = subprocess.run([str(binary), "-m", str(model_path), "-p", PROMPT, "-n", "16", "--temp", "0",
                             "-s", "1", "-t", "1", "-c", "256", "-no-cnv", "--no-warmup", *extra],
                            env=clean_env(), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_llama_cpp_computes_on_a_pyllama_rpc_server(model_path: Path) -> None:
    binary = llama_tool("llama-completion")
    local = _complete(binary, model_path, "-ngl", "0")
    with rpc_server() as (endpoint, proc):
        remote = _complete(binary, model_path, "--rpc", endpoint, "-ngl", "99")
    served = proc.stdout.read().decode() if proc.stdout else ""
    assert served.count("Accepted client connection") >= 2  # the readiness probe, then llama.cpp
    assert PROMPT in local and len(local) > len(PROMPT) + 5
    assert remote == local
