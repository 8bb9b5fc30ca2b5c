"""pyllama's engine (through the scheduler and a runner process) against
llama.cpp's llama-server built from the same tree, same model, threads and
context, one server at a time, in one run.

At each N in --streams: N concurrent streaming requests (each worker sends
--rounds requests back to back; every phase is also cut off after
--phase-timeout seconds), fixed 100-token prompts of random token ids (no
shared prefix; ids whose text tokenizes back to them), exactly 128
generated tokens (EOG tokens banned). The sides take --passes turns at each
N. Then TTFT of a 1k-token prompt with its prefix cached vs not cached.

    .venv/bin/python bench/engine_bench.py [--model PATH] [--threads 2] [--streams 1,4,8,16]
        [--rounds 2] [--passes 3] [--sides llama-server,pyllama,pyllama-http]

Three sides: ``pyllama`` is driven in-process (Scheduler -> runner
process, no HTTP); ``pyllama-http`` is ``pyllama serve`` in a subprocess,
driven through ``POST /api/generate`` (raw, NDJSON stream) with the prompt
as text (the same token ids detokenized); llama-server through
/completion with stream, n_predict, ignore_eos and cache_prompt off (on for
the cached-prefix numbers). The HTTP API has no way to ban end-of-generation
tokens, so a pyllama-http request may end before 128 tokens; its table
shows the mean tokens per request, and tokens/s count what was generated.
Both HTTP sides are read by the same bare HTTP/1.1 client (rawhttp.py):
on two cores the load generator's CPU is taken from the servers.
Prints markdown tables.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import numpy as np
import uvloop

from common import build_dir, default_model, free_port, platform_line
from rawhttp import post_lines
from pyllama import _native
from pyllama.config import Config
from pyllama.engine import Chunk, Done, Failure, GenerateRequest, SamplingOptions
from pyllama.scheduler import ModelRef, Scheduler

PROMPT_TOKENS = 100
GEN_TOKENS = 128
PREFIX_TOKENS = 1000


@dataclass
class Sample:
    """One request: when it was sent, when each token batch arrived."""

    sent: float
    arrivals: list[tuple[float, int]] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(n for _, n in self.arrivals)

    @property
    def ttft(self) -> float:
        return self.arrivals[0][0] - self.sent

    @property
    def stream_rate(self) -> float:
        """Decode speed of this stream: tokens after the first over the time they took."""
        span = self.arrivals[-1][0] - self.arrivals[0][0]
        return (self.tokens - 1) / span if span > 0 else 0.0


@dataclass
class Phase:
    n: int
    samples: list[Sample]
    wall: float

    @property
    def aggregate(self) -> float:
        return sum(s.tokens for s in self.samples) / self.wall

    def pct(self, q: float) -> float:
        return float(np.percentile([s.ttft for s in self.samples], q))

    @property
    def per_stream(self) -> float:
        return statistics.mean(s.stream_rate for s in self.samples)


# A request function: prompt tokens, max tokens, cache? -> async iterator of (time, n_tokens).
Generate = Callable[[list[int], int, bool], AsyncIterator[tuple[float, int]]]


async def run_phase(generate: Generate, prompts: list[list[int]], n: int, rounds: int, limit: float,
                    exact: bool = True) -> Phase:
    """N workers, each sending ``rounds`` requests back to back (none started after ``limit`` s).
    ``exact``: every request must produce exactly GEN_TOKENS tokens."""
    samples: list[Sample] = []
    start = time.perf_counter()

    async def worker(w: int) -> None:
        for r in range(rounds):
            if time.perf_counter() - start > limit:
                return
            sample = Sample(time.perf_counter())
            async for arrival in generate(prompts[(w * rounds + r) % len(prompts)], GEN_TOKENS, False):
                sample.arrivals.append(arrival)
            if sample.tokens != GEN_TOKENS and (exact or not 0 < sample.tokens <= GEN_TOKENS):
                raise RuntimeError(f"expected {GEN_TOKENS} tokens, got {sample.tokens}")
            samples.append(sample)

    await asyncio.gather(*(worker(w) for w in range(n)))
    return Phase(n, samples, time.perf_counter() - start)


async def prefix_ttft(generate: Generate, draw: Callable[[int], list[int]], reps: int) -> tuple[float, float]:
    """Median TTFT of a 1k-token prompt: (prefix cached, fresh prompt). ``draw(n)``: n random ids."""
    cached, fresh = [], []
    for _ in range(reps):
        prefix = draw(PREFIX_TOKENS)
        for label, prompt in (("warm", prefix + draw(20)),
                              ("cached", prefix + draw(20)),
                              ("fresh", draw(PREFIX_TOKENS + 20))):
            t0 = time.perf_counter()
            first = None
            async for t, _ in generate(prompt, 4, True):
                first = first or t
            assert first is not None
            if label == "cached":
                cached.append(first - t0)
            elif label == "fresh":
                fresh.append(first - t0)
    return statistics.median(cached), statistics.median(fresh)


def peak_rss(pid: int) -> int:
    """VmHWM (peak resident set) of a live process, bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


# ---- pyllama -------------------------------------------------------------------------------


class Ours:
    """Scheduler + runner process with N slots of ``n_ctx`` tokens each."""

    def __init__(self, model: Path, threads: int, n_ctx: int, n: int, eog_ban: dict[int, float]) -> None:
        self.sched = Scheduler(Config(num_parallel=n, context_length=n_ctx, keep_alive="-1"), n_threads=threads)
        self.ref = ModelRef.from_path(model)
        self.ban = eog_ban

    async def generate(self, prompt: list[int], n_predict: int, cache: bool) -> AsyncIterator[tuple[float, int]]:
        request = GenerateRequest(prompt=prompt, options=SamplingOptions(
            temperature=0, num_predict=n_predict, logit_bias=self.ban))
        async for event in await self.sched.generate(self.ref, request):
            if isinstance(event, Chunk) and event.tokens:
                yield time.perf_counter(), len(event.tokens)
            elif isinstance(event, Failure):
                raise RuntimeError(event.message)
            elif isinstance(event, Done):
                return

    async def start(self) -> None:
        await self.sched.load(self.ref)

    @property
    def pid(self) -> int:
        return self.sched.ps()[0].pid

    async def stop(self) -> None:
        await self.sched.close()


def process_tree_rss(pid: int) -> int:
    """Peak RSS of a process plus its direct children (the server and its runner)."""
    total = peak_rss(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            try:
                total += peak_rss(int(stat.parent.name))
            except OSError:
                pass
    return total


class ServerProcess:
    """A server in a subprocess (``proc``) on a free loopback port, talked to through ``client``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=600,
                                        limits=httpx.Limits(max_connections=64))

    async def launch(self, cmd: list[str], ready_path: str, timeout: float,
                     env: dict[str, str] | None = None) -> None:
        """Start ``cmd`` and wait until ``ready_path`` answers 200."""
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{' '.join(cmd)} exited with {self.proc.returncode}")
            try:
                if (await self.client.get(ready_path)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{' '.join(cmd)} did not answer on {ready_path} within {timeout:.0f}s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self) -> None:
        await self.client.aclose()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class OursHTTP(ServerProcess):
    """``pyllama serve`` in a subprocess with N slots, driven through /api/generate."""

    exact = False

    def __init__(self, model: Path, threads: int, n_ctx: int, n: int, texts: dict[tuple[int, ...], str]) -> None:
        super().__init__()
        self.model, self.n_ctx, self.texts = model, n_ctx, texts
        self.home = tempfile.TemporaryDirectory(prefix="pyllama-bench-")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PYLLAMA_", "OLLAMA_"))}
        self.env.update({"PYLLAMA_HOST": f"127.0.0.1:{self.port}", "PYLLAMA_MODELS": self.home.name,
                         "PYLLAMA_NUM_PARALLEL": str(n), "PYLLAMA_CONTEXT_LENGTH": str(n_ctx),
                         "PYLLAMA_NUM_THREADS": str(threads), "PYLLAMA_KEEP_ALIVE": "-1"})

    async def start(self) -> None:
        await self.launch([sys.executable, "-m", "pyllama", "serve"], "/", 60, env=self.env)
        data = self.model.read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (await self.client.post(f"/api/blobs/{digest}", content=data)).raise_for_status()
        (await self.client.post("/api/create", json={"model": "bench", "files": {"model.gguf": digest},
                                                     "stream": False})).raise_for_status()
        (await self.client.post("/api/generate", json={"model": "bench", "prompt": "",
                                                       "options": {"num_ctx": self.n_ctx}})).raise_for_status()

    async def generate(self, prompt: list[int], n_predict: int, cache: bool,
                       info: dict[str, float] | None = None) -> AsyncIterator[tuple[float, int]]:
        """``info`` gets ``prompt_n``, ``prompt_ms`` and ``eval_ms``: the prompt tokens this request evaluated, how long that took, and how long generating took."""
        body = {"model": "bench", "prompt": self.texts[tuple(prompt)], "raw": True, "stream": True,
                "options": {"num_predict": n_predict, "temperature": 0, "num_ctx": self.n_ctx}}
        seen = 0
        async for line in post_lines("127.0.0.1", self.port, "/api/generate", msgspec.json.encode(body)):
            if line.startswith(b'{"error"'):
                raise RuntimeError(line.decode())
            if b'"done":true' in line:
                chunk = msgspec.json.decode(line)
                if info is not None:
                    info["prompt_n"] = int(chunk.get("prompt_eval_count", 0))
                    info["prompt_ms"] = int(chunk.get("prompt_eval_duration", 0)) / 1e6
                    info["eval_ms"] = int(chunk.get("eval_duration", 0)) / 1e6
                rest = int(chunk.get("eval_count", seen)) - seen  # tokens whose text came in one piece
                if rest > 0:
                    yield time.perf_counter(), rest
                return
            if b'"response":""' not in line:
                seen += 1
                yield time.perf_counter(), 1

    def rss(self) -> int:
        return process_tree_rss(self.pid)

    async def stop(self) -> None:
        await super().stop()
        self.home.cleanup()


# ---- llama-server ----------------------------------------------------------------------------


class LlamaServer(ServerProcess):
    """llama-server at --parallel N, talked to over /completion (SSE)."""

    def __init__(self, binary: Path, model: Path, threads: int, n_ctx: int, n: int) -> None:
        super().__init__()
        self.cmd = [str(binary), "-m", str(model), "-t", str(threads), "-tb", str(threads),
                    "-c", str(n_ctx * n), "-np", str(n), "-b", "512", "-ub", "512", "-no-kvu",
                    "--host", "127.0.0.1", "--port", str(self.port), "--no-webui"]

    async def start(self) -> None:
        await self.launch(self.cmd, "/health", 120)

    async def generate(self, prompt: list[int], n_predict: int, cache: bool,
                       info: dict[str, float] | None = None) -> AsyncIterator[tuple[float, int]]:
        """``info`` gets ``prompt_n``, ``prompt_ms`` and ``eval_ms``: the prompt tokens this request evaluated, how long that took, and how long generating took."""
        body = {"prompt": prompt, "n_predict": n_predict, "stream": True, "ignore_eos": True,
                "cache_prompt": cache, "temperature": 0, "return_tokens": True}
        seen = 0
        async for line in post_lines("127.0.0.1", self.port, "/completion", msgspec.json.encode(body)):
            if not line.startswith(b"data: "):
                continue
            chunk = msgspec.json.decode(line[6:])
            # tokens_predicted is cumulative; a chunk's own token list can be
            # empty while a split UTF-8 character is held back.
            predicted = int(chunk.get("tokens_predicted", seen))
            if predicted > seen:
                yield time.perf_counter(), predicted - seen
                seen = predicted
            if chunk.get("stop"):
                if info is not None:
                    info["prompt_n"] = int(chunk.get("timings", {}).get("prompt_n", 0))
                    info["prompt_ms"] = float(chunk.get("timings", {}).get("prompt_ms", 0))
                    info["eval_ms"] = float(chunk.get("timings", {}).get("predicted_ms", 0))
                return


# ---- driver ------------------------------------------------------------------------------------


def llama_bench_tg(binary: Path, model: Path, threads: int) -> float:
    out = subprocess.run([str(binary), "-m", str(model), "-t", str(threads), "-p", "0", "-n", "128",
                          "-r", "3", "-o", "json"], check=True, capture_output=True, text=True).stdout
    return float(json.loads(out)[0]["avg_ts"])


Result = tuple[dict[int, Phase], dict[int, int], tuple[float, float]]
Side = Ours | OursHTTP | LlamaServer


async def measure(makers: dict[str, Callable[[int], Side]], streams: list[int], rounds: int, passes: int,
                  limit: float, prompts: list[list[int]], warmup: list[list[int]], seed: int,
                  draw: Callable[[np.random.Generator, int], list[int]], reps: int) -> dict[str, Result]:
    """Per N, the sides take turns (one server alive at a time), ``passes``
    times over: this machine's speed drifts by more than the differences
    being measured, so each side gets slices of the same stretch of time.
    A side's phase merges its passes (samples pooled, wall times summed)."""
    results: dict[str, Result] = {name: ({}, {}, (0.0, 0.0)) for name in makers}
    for n in streams:
        for turn in range(passes):
            for name, make in makers.items():
                phases, rss, cache = results[name]
                server = make(n)
                await server.start()
                try:
                    exact = getattr(server, "exact", True)
                    await run_phase(server.generate, warmup, n, 1, limit, exact)  # warm-up, prompts of its own
                    phase = await run_phase(server.generate, prompts, n, rounds, limit, exact)
                    if n in phases:
                        phase = Phase(n, phases[n].samples + phase.samples, phases[n].wall + phase.wall)
                    phases[n] = phase
                    if n == streams[0] and turn == 0:
                        rng = np.random.default_rng(seed + 1)  # the same prompts for every side
                        cache = await prefix_ttft(server.generate, lambda size: draw(rng, size), reps)
                    peak = server.rss() if isinstance(server, OursHTTP) else peak_rss(server.pid)
                    rss[n] = max(rss.get(n, 0), peak)
                finally:
                    await server.stop()
                results[name] = (phases, rss, cache)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=2048, help="context per slot (num_ctx)")
    parser.add_argument("--streams", default="1,4,8,16")
    parser.add_argument("--rounds", type=int, default=2, help="requests per worker and pass")
    parser.add_argument("--passes", type=int, default=3, help="turns each side takes per N")
    parser.add_argument("--phase-timeout", type=float, default=120.0)
    parser.add_argument("--cache-reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--sides", default="llama-server,pyllama,pyllama-http",
                        help="which servers to run (llama-server always)")
    args = parser.parse_args()
    model = args.model or default_model()
    streams = [int(x) for x in args.streams.split(",")]
    binary = build_dir() / "bin" / "llama-server"
    if not binary.exists():
        from common import build_llama_tools

        binary = build_llama_tools("llama-server") / "llama-server"
    bench_bin = binary.parent / "llama-bench"

    vocab_model = _native.Model(model, vocab_only=True)
    eog_ban = {t: float("-inf") for t in range(vocab_model.n_vocab) if vocab_model.is_eog(t)}
    vocab = (1000, vocab_model.n_vocab - 1000)  # ordinary tokens: clear of control/special ids
    rng = np.random.default_rng(args.seed)
    prompts = [round_trip_prompt(vocab_model, rng, vocab, PROMPT_TOKENS) for _ in range(max(streams) * args.rounds)]
    warmup = [round_trip_prompt(vocab_model, rng, vocab, PROMPT_TOKENS) for _ in range(max(streams))]
    texts = _TextPrompts(vocab_model)

    available: dict[str, Callable[[int], Side]] = {
        "llama-server": lambda n: LlamaServer(binary, model, args.threads, args.ctx, n),
        "pyllama": lambda n: Ours(model, args.threads, args.ctx, n, eog_ban),
        "pyllama-http": lambda n: OursHTTP(model, args.threads, args.ctx, n, texts),
    }
    sides = [s.strip() for s in args.sides.split(",")]
    if "llama-server" not in sides or any(s not in available for s in sides):
        sys.exit(f"--sides: names from {', '.join(available)}, llama-server included")
    makers = {name: available[name] for name in sides}
    # The server runs its scheduler on uvloop; so does the in-process side and the load generator.
    results = uvloop.run(measure(makers, streams, args.rounds, args.passes, args.phase_timeout, prompts, warmup,
                                 args.seed, lambda r, size: round_trip_prompt(vocab_model, r, vocab, size), args.cache_reps))
    tg = llama_bench_tg(bench_bin, model, args.threads) if bench_bin.exists() else float("nan")
    report(args, model, streams, results, tg)


def round_trip(vocab_model: _native.Model, ids: list[int]) -> list[int] | None:
    """Token ids that the HTTP side's text prompt tokenizes back to, exactly (random ids
    re-tokenize into some 10 % more tokens, which would give that side longer prompts):
    the fixed point of detokenize -> tokenize from ``ids``, or None if there is none soon."""
    for _ in range(6):
        again = vocab_model.tokenize(vocab_model.detokenize(ids), add_special=False, parse_special=True).tolist()
        if again == ids:
            return ids
        ids = again
    return None


def round_trip_prompt(vocab_model: _native.Model, rng: np.random.Generator, vocab: tuple[int, int],
                      size: int) -> list[int]:
    """``size`` random ordinary token ids that survive the round trip."""
    while True:
        ids = round_trip(vocab_model, rng.integers(*vocab, size).tolist())
        if ids is not None and len(ids) >= size and (fixed := round_trip(vocab_model, ids[:size])):
            if len(fixed) == size:
                return fixed


class _TextPrompts(dict[tuple[int, ...], str]):
    """Token-id prompts as text for the HTTP side (detokenized on first use)."""

    def __init__(self, vocab_model: _native.Model) -> None:
        super().__init__()
        self.vocab_model = vocab_model

    def __missing__(self, key: tuple[int, ...]) -> str:
        text = self.vocab_model.detokenize(list(key))
        self[key] = text
        return text


def report(args: argparse.Namespace, model: Path, streams: list[int], results: dict[str, Result], tg: float) -> None:
    ref_phases, ref_rss, _ = results["llama-server"]
    ours = [name for name in results if name != "llama-server"]
    print(f"model: {model.name} | threads {args.threads} | ctx/slot {args.ctx} | prompt {PROMPT_TOKENS} "
          f"tokens, {GEN_TOKENS} generated | {args.rounds} requests per stream x {args.passes} passes")
    print(f"platform: {platform_line()} | load avg {os.getloadavg()[0]:.2f}\n")
    print("| N | side | agg tok/s | vs llama-server | per-stream tok/s | vs llama-server | tokens/request "
          "| TTFT p50 ms | TTFT p95 ms | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in streams:
        lq = ref_phases[n]
        for name in ["llama-server", *ours]:
            phases, rss, _ = results[name]
            o = phases[n]
            tokens = statistics.mean(s.tokens for s in o.samples)
            print(f"| {n} | {name} | {o.aggregate:.1f} | {o.aggregate / lq.aggregate:.2f} | {o.per_stream:.1f} "
                  f"| {o.per_stream / lq.per_stream:.2f} | {tokens:.1f} | {o.pct(50) * 1e3:.0f} "
                  f"| {o.pct(95) * 1e3:.0f} | {rss[n] / 2**20:.0f} |")
    if "pyllama" in results and "pyllama-http" in results:
        print("\nHTTP vs in-process (pyllama-http / pyllama):")
        print("| N | aggregate | per-stream |")
        print("|---|---|---|")
        for n in streams:
            h, i = results["pyllama-http"][0][n], results["pyllama"][0][n]
            print(f"| {n} | {h.aggregate / i.aggregate:.2f} | {h.per_stream / i.per_stream:.2f} |")
    print(f"\nTTFT, {PREFIX_TOKENS + 20}-token prompt, N={streams[0]} (median of {args.cache_reps}):")
    print("| | cached 1k prefix ms | uncached ms | cached / uncached |")
    print("|---|---|---|---|")
    for name, (_, _, (cached, fresh)) in results.items():
        print(f"| {name} | {cached * 1e3:.0f} | {fresh * 1e3:.0f} | {cached / fresh:.1%} |")
    for name in ours:
        single = results[name][0][streams[0]].per_stream
        print(f"\nllama-bench tg128: {tg:.1f} tok/s; {name} single stream {single:.1f} tok/s = {single / tg:.1%}")
    if args.json:
        data: dict[str, object] = {
            side: {str(n): {"aggregate": p.aggregate, "per_stream": p.per_stream, "ttft_p50": p.pct(50),
                            "ttft_p95": p.pct(95), "peak_rss": rss[n]} for n, p in phases.items()}
            | {"cache": {"cached": cache[0], "uncached": cache[1]}}
            for side, (phases, rss, cache) in results.items()}
        data["llama_bench_tg128"] = tg
        args.json.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
