"""Single-stream decode speed of the engine while another CPU-bound process
runs, per OpenMP wait policy (PYLLAMA_THREAD_WAIT) and thread count.

ggml's CPU back-end runs its threads through OpenMP here; between the
graph's barriers a waiting thread spins (libgomp's default, and "active")
or sleeps ("passive"). On a machine with nothing else to do spinning is a
little faster; when another process wants a core, a spinning thread takes
time the thread it waits for needs. Each configuration runs in a fresh
process (libgomp reads the policy once), the sides alternating --passes
times; the competitor is a Python busy loop. llama-server from the same tree
(as shipped: libgomp's default policy) runs the same single stream through
/completion under the same competition (--no-llama-server to skip it).

    .venv/bin/python bench/contention_bench.py [--threads 1,2] [--passes 2] [--tokens 96]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from common import build_dir, build_llama_tools, default_model, free_port

CHILD = """
import json, sys, time
from pyllama.engine import Engine
model, threads, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with Engine(model, n_ctx=512, n_parallel=1, n_threads=threads) as engine:
    ban = {t: float("-inf") for t in range(engine.model.n_vocab) if engine.model.is_eog(t)}
    engine.generate("Warm up", {"num_predict": 4, "temperature": 0})
    done = engine.generate("Once upon a time", {"num_predict": tokens, "temperature": 0, "logit_bias": ban}).done
    print(json.dumps(done.eval_count / (done.eval_duration / 1e9)))
"""


def _env_without_wait_policy() -> dict[str, str]:
    """This environment less any OpenMP wait settings: each side gets only what it is given."""
    return {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}


def run(model: Path, threads: int, tokens: int, policy: str, busy: bool) -> float:
    env = _env_without_wait_policy()
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        time.sleep(0.2)
        out = subprocess.run([sys.executable, "-c", CHILD, str(model), str(threads), str(tokens)], env=env,
                             check=True, capture_output=True, text=True).stdout
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    return float(json.loads(out.strip().splitlines()[-1]))


def run_llama_server(binary: Path, model: Path, threads: int, tokens: int, busy: bool) -> float:
    """The same stream through llama-server's /completion; its own decode rate."""
    env = _env_without_wait_policy()
    port = free_port()
    server = subprocess.Popen([str(binary), "-m", str(model), "-t", str(threads), "-tb", str(threads), "-c", "512",
                               "-np", "1", "--host", "127.0.0.1", "--port", str(port), "--no-webui"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    competitor = None
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            for _ in range(300):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            client.post("/completion", json={"prompt": "Warm up", "n_predict": 4, "temperature": 0})
            competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            time.sleep(0.2)
            body = {"prompt": "Once upon a time", "n_predict": tokens, "temperature": 0, "ignore_eos": True,
                    "cache_prompt": False}
            timings = client.post("/completion", json=body).json()["timings"]
        return float(timings["predicted_per_second"])
    finally:
        for proc in (competitor, server):
            if proc is not None:
                proc.kill()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--policies", default="default,passive,active")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--no-llama-server", action="store_true")
    args = parser.parse_args()
    model = args.model or default_model()
    threads = [int(x) for x in args.threads.split(",")]
    policies = [p.strip() for p in args.policies.split(",")]
    binary = build_dir() / "bin" / "llama-server"
    if not args.no_llama_server and not binary.exists():
        binary = build_llama_tools("llama-server") / "llama-server"
    rates: dict[tuple[int, str, bool], list[float]] = {}
    for _ in range(args.passes):
        for busy in (False, True):
            for t in threads:
                for policy in policies:
                    rate = run(model, t, args.tokens, "" if policy == "default" else policy, busy)
                    rates.setdefault((t, policy, busy), []).append(rate)
                if not args.no_llama_server:
                    rate = run_llama_server(binary, model, t, args.tokens, busy)
                    rates.setdefault((t, "llama-server", busy), []).append(rate)
    print(f"model: {model.name} | {args.tokens} tokens | {args.passes} passes | load avg {os.getloadavg()[0]:.2f}\n")
    print("| threads | side / OMP wait policy | idle tok/s | 1 busy process tok/s | busy / idle |")
    print("|---|---|---|---|---|")
    for t in threads:
        for policy in policies + ([] if args.no_llama_server else ["llama-server"]):
            idle = statistics.median(rates[(t, policy, False)])
            busy = statistics.median(rates[(t, policy, True)])
            print(f"| {t} | {policy} | {idle:.1f} | {busy:.1f} | {busy / idle:.2f} |")


if __name__ == "__main__":
    main()
