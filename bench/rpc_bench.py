"""A model split over llama.cpp's RPC back-end: pyllama beside llama-server,
local vs split across 1 and 2 loopback `pyllama rpc-server`s, in one run.

For each layout (local; --ngl layers on one RPC server; the same layers
spread over two) each side is started alone (an RPC server serves one client
at a time), warmed with one request, then at each N in --streams N
concurrent streaming requests (--rounds each, back to back) of the same
text prompt and --n-predict tokens. Reported per phase: generated tokens/s
over the phase's wall time, the median time to the first token, and the
bytes that crossed the RPC servers' sockets per generated token (read from
the kernel's TCP counters with `ss`, both directions, prompt included).

    .venv/bin/python bench/rpc_bench.py [--model PATH] [--threads 1] [--ngl 20] [--streams 1,4]
        [--n-predict 48] [--rounds 1]

pyllama is `pyllama serve` with PYLLAMA_RPC_SERVERS and num_gpu=--ngl,
driven through POST /api/generate (raw, NDJSON); llama-server gets
`--rpc ... -ngl --ngl` and is driven through /completion (SSE, ignore_eos).
pyllama cannot ban end-of-generation tokens over HTTP, so its tokens/s count
what it generated. Prints markdown tables and the machine's load.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec

from common import build_dir, build_llama_tools, default_model, free_port, platform_line, stop_process
from rawhttp import post_lines

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle.\n\n"


@dataclass
class Phase:
    tokens: int = 0
    wall: float = 0.0
    ttfts: list[float] = field(default_factory=list)
    rpc_bytes: int = 0

    @property
    def rate(self) -> float:
        return self.tokens / self.wall if self.wall else 0.0


def rpc_socket_bytes(ports: list[int]) -> int:
    """Bytes sent + received so far on the established server-side sockets of ``ports``."""
    if not ports:
        return 0
    where = " or ".join(f"sport = :{p}" for p in ports)
    out = subprocess.run(["ss", "-tinH", "state", "established", f"( {where} )"], capture_output=True,
                         text=True, check=True).stdout
    return sum(int(n) for n in re.findall(r"bytes_(?:sent|received):(\d+)", out))


class Side:
    """A server in a subprocess on a free loopback port."""

    name = ""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self, cmd: list[str], ready: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {self.proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{ready}", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{cmd[0]} did not start")

    def stop(self) -> None:
        stop_process(self.proc)

    async def generate(self, n_predict: int) -> tuple[float, int]:
        """One streamed request: (seconds to the first token, tokens generated)."""
        raise NotImplementedError


class Pyllama(Side):
    name = "pyllama"

    def __init__(self, servers: list[str], threads: int, ngl: int, parallel: int) -> None:
        super().__init__()
        self.ngl = ngl
        self.home = tempfile.TemporaryDirectory(prefix="rpc-bench-")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYLLAMA_", "OLLAMA_"))}
        env.update(PYLLAMA_HOST=f"127.0.0.1:{self.port}", PYLLAMA_MODELS=self.home.name,
                   PYLLAMA_NUM_THREADS=str(threads), PYLLAMA_NUM_PARALLEL=str(parallel),
                   PYLLAMA_RPC_SERVERS=",".join(servers), PYLLAMA_KEEP_ALIVE="-1")
        self.launch([sys.executable, "-m", "pyllama", "serve"], "/api/version", env)

    def create(self, model: Path) -> None:
        import ollama

        client = ollama.Client(host=f"http://127.0.0.1:{self.port}")
        client.create("bench", files={"model.gguf": client.create_blob(model)})

    async def generate(self, n_predict: int) -> tuple[float, int]:
        body = {"model": "bench", "prompt": PROMPT, "raw": True, "stream": True,
                "options": {"num_predict": n_predict, "temperature": 0, "num_ctx": 512, "num_gpu": self.ngl}}
        t0 = time.perf_counter()
        first, tokens = 0.0, 0
        async for line in post_lines("127.0.0.1", self.port, "/api/generate", msgspec.json.encode(body)):
            chunk = msgspec.json.decode(line)
            if "error" in chunk:
                raise RuntimeError(chunk["error"])
            if not first and chunk.get("response"):
                first = time.perf_counter() - t0
            if chunk.get("done"):
                tokens = int(chunk.get("eval_count", 0))
        return first, tokens

    def stop(self) -> None:
        super().stop()
        self.home.cleanup()


class LlamaServer(Side):
    name = "llama-server"

    def __init__(self, binary: Path, model: Path, servers: list[str], threads: int, ngl: int, parallel: int) -> None:
        super().__init__()
        rpc = ["--rpc", ",".join(servers), "-ngl", str(ngl)] if servers else ["-ngl", "0"]
        self.launch([str(binary), "-m", str(model), "-t", str(threads), "-tb", str(threads), "-c", str(512 * parallel),
                     "-np", str(parallel), "--host", "127.0.0.1", "--port", str(self.port), "--no-webui", "-fit", "off",
                     *rpc],
                    "/health")

    async def generate(self, n_predict: int) -> tuple[float, int]:
        body = {"prompt": PROMPT, "n_predict": n_predict, "stream": True, "ignore_eos": True, "temperature": 0,
                "cache_prompt": False}
        t0 = time.perf_counter()
        first, tokens = 0.0, 0
        async for line in post_lines("127.0.0.1", self.port, "/completion", msgspec.json.encode(body)):
            if not line.startswith(b"data: "):
                continue
            chunk = msgspec.json.decode(line[6:])
            tokens = max(tokens, int(chunk.get("tokens_predicted", 0)))
            if not first and chunk.get("content"):
                first = time.perf_counter() - t0
            if chunk.get("stop"):
                break
        return first, tokens


async def phase(side: Side, n: int, rounds: int, n_predict: int, ports: list[int]) -> Phase:
    result = Phase()

    async def worker() -> None:
        for _ in range(rounds):
            ttft, tokens = await side.generate(n_predict)
            result.ttfts.append(ttft)
            result.tokens += tokens

    before = rpc_socket_bytes(ports)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(n)))
    result.wall = time.perf_counter() - t0
    result.rpc_bytes = rpc_socket_bytes(ports) - before
    return result


def rpc_servers(count: int, threads: int) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    from pyllama import _native
    from pyllama.rpc import RpcUnreachableError, probe

    procs, endpoints = [], []
    for _ in range(count):
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "pyllama", "rpc-server", "-p", str(port),
                                       "-t", str(threads)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        endpoints.append(f"127.0.0.1:{port}")
    for endpoint in endpoints:
        for _ in range(300):
            try:
                probe(endpoint, _native.rpc_protocol_version()[0], timeout=2)
                break
            except RpcUnreachableError:
                time.sleep(0.1)
    return procs, endpoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1, help="threads of each server and each RPC server")
    parser.add_argument("--ngl", type=int, default=20, help="layers on the RPC devices (SmolLM2 has 30)")
    parser.add_argument("--streams", default="1,4")
    parser.add_argument("--n-predict", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    model = args.model or default_model()
    streams = [int(s) for s in args.streams.split(",")]
    binary = build_dir() / "bin" / "llama-server"
    if not binary.exists():
        binary = build_llama_tools("llama-server") / "llama-server"
    print(f"load before: {os.getloadavg()}", file=sys.stderr)
    procs, endpoints = rpc_servers(2, args.threads)
    ports = [int(e.rsplit(":", 1)[1]) for e in endpoints]
    rows = []
    try:
        for layout, servers in (("local", []), ("1 RPC server", endpoints[:1]), ("2 RPC servers", endpoints)):
            for make in (lambda s=servers: Pyllama(s, args.threads, args.ngl if s else 0, max(streams)),
                         lambda s=servers: LlamaServer(binary, model, s, args.threads, args.ngl, max(streams))):
                side = make()
                try:
                    if isinstance(side, Pyllama):
                        side.create(model)
                    asyncio.run(side.generate(8))  # load and warm up
                    for n in streams:
                        result = asyncio.run(phase(side, n, args.rounds, args.n_predict, ports))
                        rows.append((layout, side.name, n, result))
                        print(f"{layout:14} {side.name:12} N={n} {result.rate:6.1f} tok/s", file=sys.stderr)
                finally:
                    side.stop()
    finally:
        for proc in procs:
            stop_process(proc)
    print(f"\n{platform_line()}\n")
    print(f"SmolLM2-135M Q4_1, {args.threads} thread(s) per process, {args.ngl} of 30 layers on the RPC "
          f"devices when split, {args.n_predict} tokens per request, {args.rounds} round(s); "
          f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print("| layout | side | N | tok/s | median TTFT ms | RPC bytes / token |")
    print("|---|---|---|---|---|---|")
    for layout, name, n, r in rows:
        per_token = f"{r.rpc_bytes / r.tokens / 1024:.1f} KiB" if r.tokens and r.rpc_bytes else "-"
        print(f"| {layout} | {name} | {n} | {r.rate:.1f} | {statistics.median(r.ttfts) * 1000:.0f} | {per_token} |")


if __name__ == "__main__":
    main()
