"""CPU time per streamed token in each process and thread of ``pyllama serve``.

On a machine with as many cores as decode threads, every millisecond another
thread runs while a token is decoded is taken from a decode thread (and the
other decode threads wait for it at the next barrier), so the HTTP path's
cost is best read as CPU per token, not as wall time. This starts
``pyllama serve`` on a free port with the bundled model, streams one long
/api/generate (or /api/chat, or /v1/chat/completions) request and reads
/proc before and after: CPU ms per token of the server's threads, the
runner's threads (the decode thread and ggml's workers apart from its Python
threads) and this client.

    .venv/bin/python bench/stream_cpu.py [--route generate|chat|openai] [--tokens 400] [--threads 2]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from common import default_model, free_port



def thread_times(pid: int) -> dict[str, float]:
    """CPU seconds per thread of one process, from schedstat (nanoseconds, not clock ticks)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ran_ns = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        out["main" if task.name == str(pid) else task.name] = ran_ns / 1e9
    return out


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def body_for(route: str, tokens: int) -> tuple[str, dict[str, object]]:
    options = {"num_predict": tokens, "temperature": 0.7, "seed": 7, "repeat_penalty": 1.3}
    prompt = "Write a long story about a lighthouse keeper and the sea."
    if route == "generate":
        return "/api/generate", {"model": "bench", "prompt": prompt, "options": options}
    if route == "chat":
        return "/api/chat", {"model": "bench", "messages": [{"role": "user", "content": prompt}],
                             "options": options}
    return "/v1/chat/completions", {"model": "bench", "messages": [{"role": "user", "content": prompt}],
                                    "max_tokens": tokens, "temperature": 0.7, "seed": 7, "stream": True,
                                    "stream_options": {"include_usage": True},
                                    "frequency_penalty": 1.0}


def stream_once(client: httpx.Client, route: str, tokens: int) -> tuple[int, float, int]:
    """Stream one request; (generated tokens by the server's count, seconds, lines read)."""
    path, body = body_for(route, tokens)
    started = time.perf_counter()
    lines = 0
    count = 0
    with client.stream("POST", path, json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line:
                continue
            lines += 1
            if line.startswith("data: "):
                if line == "data: [DONE]":
                    break
                chunk = json.loads(line[6:])
                usage = chunk.get("usage")
                if usage:
                    count = int(usage["completion_tokens"])
                continue
            chunk = json.loads(line)
            if chunk.get("done"):
                count = int(chunk["eval_count"])
    return count, time.perf_counter() - started, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--route", choices=("generate", "chat", "openai"), default="generate")
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    args = parser.parse_args()
    model = args.model or default_model()

    port = free_port()
    home = tempfile.TemporaryDirectory(prefix="pyllama-cpu-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYLLAMA_", "OLLAMA_"))}
    env.update({"PYLLAMA_HOST": f"127.0.0.1:{port}", "PYLLAMA_MODELS": home.name,
                "PYLLAMA_NUM_THREADS": str(args.threads), "PYLLAMA_KEEP_ALIVE": "-1",
                "PYLLAMA_CONTEXT_LENGTH": "2048"})
    env.update(dict(kv.split("=", 1) for kv in args.env))
    server = subprocess.Popen([sys.executable, "-m", "pyllama", "serve"], env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            for _ in range(300):
                try:
                    client.get("/")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            data = model.read_bytes()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            client.post(f"/api/blobs/{digest}", content=data).raise_for_status()
            client.post("/api/create", json={"model": "bench", "files": {"model.gguf": digest},
                                             "stream": False}).raise_for_status()
            stream_once(client, args.route, 16)  # load and warm up
            runner = children(server.pid)[0]
            print(f"route {args.route}, {args.threads} threads, server pid {server.pid}, runner pid {runner}")
            for _ in range(args.reps):
                server_before, runner_before = thread_times(server.pid), thread_times(runner)
                me_before = time.process_time()
                count, seconds, lines = stream_once(client, args.route, args.tokens)
                me = time.process_time() - me_before
                server_after, runner_after = thread_times(server.pid), thread_times(runner)
                per = 1000.0 / max(count, 1)
                srv = {k: (v - server_before.get(k, 0.0)) * per for k, v in server_after.items()}
                run = {k: (v - runner_before.get(k, 0.0)) * per for k, v in runner_after.items()}
                srv_total = sum(srv.values())
                print(f"{count} tokens in {seconds:.2f}s ({count / seconds:.1f} t/s, {lines} lines); "
                      f"CPU ms/token: server {srv_total:.3f}, client {me * per:.3f}, runner "
                      + ", ".join(f"{k} {v:.3f}" for k, v in sorted(run.items()) if v > 0))
    finally:
        server.terminate()
        server.wait(30)
        home.cleanup()


if __name__ == "__main__":
    main()
