"""Speculative decoding: pyllama's engine against llama.cpp's llama-server
built from the same tree, same model, draft, threads and draft settings, in
one run, the sides taking turns.

Two workloads: ``repeat`` (a sentence given four times; the model goes on
copying it: where prompt lookup pays) and ``story`` (a chat prompt asking
for a story: fresh text, where only a draft model can help). Modes: ``off``,
``ngram`` (ours: ``speculative: "ngram"``; llama-server: ``--spec-type
ngram-simple``) and ``draft`` (``tests/fixtures/make_tiny_models.py draft``
unless --draft names another; llama-server: ``-md``). At 1 and 4 concurrent
streams, each request generates exactly --tokens tokens greedily (EOG
banned), and tokens/s counts all streams' tokens over the wall time
(prompt evaluation included: every run's prompts start differently, so
neither side reuses a cached prompt).

    .venv/bin/python bench/spec_bench.py [--threads 1] [--tokens 96] [--passes 2] [--draft PATH]

Prints a markdown table: tokens/s per side, ours/llama-server, each side's
speedup over its own ``off`` and its acceptance rate (accepted / drafted).
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from common import build_dir, default_model, free_port, platform_line
from pyllama import _native
from pyllama.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fixtures.make_tiny_models import write_draft  # noqa: E402

N_MAX, P_MIN, NGRAM_N_MAX = 4, 0.75, 8
SENTENCES = ("The quick brown fox jumps over the lazy dog while the small red hen bakes bread for the farm.",
             "Every morning the baker opens the shop at six and sells warm rolls to the people on the street.",
             "The river runs past the old mill, under the stone bridge and down to the harbour by the sea.",
             "A careful reader checks each line twice before she signs the letter and posts it to the city.")
STORIES = ("a cat who learns to fly", "a lighthouse keeper", "a robot that paints", "a lost key")
MODES = ("off", "ngram", "draft")
Result = tuple[float, int, int]  # tokens/s, drafted, accepted


def prompts(model: _native.Model, workload: str, run: int) -> list[list[int]]:
    """Four prompts of a workload, as token ids (both sides get the same ids). ``run`` makes
    them start differently each time, so no side reuses a cached prompt of an earlier run."""
    if workload == "repeat":
        texts = [f"Line {run}.\n" + "\n".join([s] * 4) + "\n" for s in SENTENCES]
    else:
        texts = [f"<|im_start|>system\nRun {run}.<|im_end|>\n<|im_start|>user\nWrite a story about {s}.<|im_end|>\n"
                 "<|im_start|>assistant\n" for s in STORIES]
    return [model.tokenize(t, add_special=True, parse_special=True).tolist() for t in texts]


class Ours:
    """The engine in this process: four slots, the draft loaded."""

    def __init__(self, model: Path, draft: Path, threads: int, n_ctx: int, tokens: int) -> None:
        self.engine = Engine(model, n_ctx=4 * n_ctx, n_parallel=4, n_threads=threads, draft=draft).start()
        eog = [t for t in range(self.engine.model.n_vocab) if self.engine.model.is_eog(t)]
        self.base = {"temperature": 0, "num_predict": tokens, "logit_bias": {t: float("-inf") for t in eog}}

    def run(self, batch: list[list[int]], mode: str) -> Result:
        opts = {**self.base, "speculative": mode}
        opts |= {"draft_num_predict": NGRAM_N_MAX} if mode == "ngram" else {"draft_num_predict": N_MAX,
                                                                            "draft_p_min": P_MIN}
        t0 = time.perf_counter()
        handles = [self.engine.submit(p, opts) for p in batch]
        done = [h.result().done for h in handles]
        wall = time.perf_counter() - t0
        return (sum(d.eval_count for d in done) / wall, sum(d.draft_count for d in done),
                sum(d.draft_accepted_count for d in done))

    def close(self) -> None:
        self.engine.close()


class LlamaServer:
    """llama-server with four slots, speculation fixed by its flags."""

    def __init__(self, binary: Path, model: Path, draft: Path, threads: int, n_ctx: int, mode: str) -> None:
        self.port = free_port()
        cmd = [str(binary), "-m", str(model), "-t", str(threads), "-tb", str(threads), "-c", str(4 * n_ctx),
               "-np", "4", "-no-kvu", "--host", "127.0.0.1", "--port", str(self.port), "--no-webui"]
        if mode == "draft":
            cmd += ["-md", str(draft), "--spec-type", "draft-simple", "--spec-draft-n-max", str(N_MAX),
                    "--spec-draft-n-min", "0",
                    "--spec-draft-p-min", str(P_MIN), "-td", str(threads)]
        elif mode == "ngram":
            cmd += ["--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", "3",
                    "--spec-ngram-simple-size-m", str(NGRAM_N_MAX)]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                sys.exit(f"llama-server ({mode}) exited: {self.log.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        sys.exit(f"llama-server ({mode}) did not start")

    def run(self, batch: list[list[int]], tokens: int) -> Result:
        async def one(client: httpx.AsyncClient, prompt: list[int]) -> dict[str, Any]:
            body = {"prompt": prompt, "n_predict": tokens, "temperature": 0, "ignore_eos": True,
                    "cache_prompt": False}
            resp = await client.post(self.url + "/completion", json=body)
            resp.raise_for_status()
            return resp.json()

        async def all_of() -> list[dict[str, Any]]:
            async with httpx.AsyncClient(timeout=600) as client:
                return await asyncio.gather(*(one(client, p) for p in batch))

        t0 = time.perf_counter()
        out = asyncio.run(all_of())
        wall = time.perf_counter() - t0
        timings = [o.get("timings", {}) for o in out]
        return (sum(int(o["tokens_predicted"]) for o in out) / wall, sum(t.get("draft_n", 0) for t in timings),
                sum(t.get("draft_n_accepted", 0) for t in timings))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=default_model())
    parser.add_argument("--draft", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=1024, help="context per slot")
    args = parser.parse_args()
    binary = build_dir() / "bin" / "llama-server"
    if not binary.exists():
        from common import build_llama_tools

        binary = build_llama_tools("llama-server") / "llama-server"
    tmp = tempfile.TemporaryDirectory(prefix="spec-bench-")
    draft = args.draft or write_draft(Path(tmp.name) / "draft.gguf", args.model)
    vocab = _native.Model(args.model, vocab_only=True)
    runs = iter(range(1 << 30))
    ours = Ours(args.model, draft, args.threads, args.ctx, args.tokens)
    servers = {m: LlamaServer(binary, args.model, draft, args.threads, args.ctx, m) for m in MODES}
    results: dict[tuple[str, str, int, str], list[Result]] = {}
    try:
        for p in range(args.passes):
            for workload in ("repeat", "story"):
                for n in (1, 4):
                    for mode in MODES:
                        batch = prompts(vocab, workload, next(runs))
                        sides: list[tuple[str, Callable[[], Result]]] = [
                            ("llama-server", lambda: servers[mode].run(batch[:n], args.tokens)),
                            ("pyllama", lambda: ours.run(batch[:n], mode))]
                        for side, call in sides if p % 2 == 0 else reversed(sides):
                            results.setdefault((workload, mode, n, side), []).append(call())
                            print(f"pass {p} {workload} x{n} {mode} {side}: "
                                  f"{results[(workload, mode, n, side)][-1][0]:.1f} tok/s", file=sys.stderr)
    finally:
        ours.close()
        for server in servers.values():
            server.close()
    report(args, draft, results)


def report(args: argparse.Namespace, draft: Path, results: dict[tuple[str, str, int, str], list[Result]]) -> None:
    def rate(key: tuple[str, str, int, str]) -> float:
        return statistics.median(r[0] for r in results[key])

    def accepted(key: tuple[str, str, int, str]) -> str:
        drafted = sum(r[1] for r in results[key])
        return f"{100 * sum(r[2] for r in results[key]) / drafted:.0f}%" if drafted else "-"

    print(f"# speculative decoding: {args.model.name}, draft {draft.name}, {args.threads} thread(s), "
          f"{args.tokens} tokens per request, median of {args.passes} passes\n\n{platform_line()}\n")
    print("| workload | streams | mode | llama-server tok/s | pyllama tok/s | ours / theirs | "
          "speedup llama-server | speedup pyllama | accepted llama-server | accepted pyllama |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for workload in ("repeat", "story"):
        for n in (1, 4):
            for mode in MODES:
                theirs, ours = (rate((workload, mode, n, s)) for s in ("llama-server", "pyllama"))
                base_t, base_o = (rate((workload, "off", n, s)) for s in ("llama-server", "pyllama"))
                print(f"| {workload} | {n} | {mode} | {theirs:.1f} | {ours:.1f} | {ours / theirs:.2f} | "
                      f"{theirs / base_t:.2f} | {ours / base_o:.2f} | {accepted((workload, mode, n, 'llama-server'))} | "
                      f"{accepted((workload, mode, n, 'pyllama'))} |")


if __name__ == "__main__":
    main()
