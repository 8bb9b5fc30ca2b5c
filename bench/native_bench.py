"""pyllama._native against llama.cpp's own tools, same tree, same model,
same threads, in one run.

  (a) a Python greedy loop over _native vs `llama-bench` pp512 / tg128
  (b) N sequences in one batch (prompt 128, generate 128 each) vs
      `llama-batched-bench` at N = 1, 4, 8, 16 (generation tokens/s)

    .venv/bin/python bench/native_bench.py [--model PATH] [--threads 2] [--reps 3] [--rounds 3]

Prints a table of tokens/s and ratios; with --json also writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from common import build_llama_tools, default_model, platform_line
from pyllama import _native


def llama_bench(bin_dir: Path, model: Path, threads: int, reps: int) -> dict[str, float]:
    out = subprocess.run([str(bin_dir / "llama-bench"), "-m", str(model), "-t", str(threads),
                          "-p", "512", "-n", "128", "-r", str(reps), "-o", "json"],
                         check=True, capture_output=True, text=True).stdout
    result = {}
    for row in json.loads(out):
        key = "pp512" if row["n_prompt"] == 512 and row["n_gen"] == 0 else "tg128"
        result[key] = float(row["avg_ts"])
    return result


def batched_bench(bin_dir: Path, model: Path, threads: int, n_ctx: int, pp: int, tg: int,
                  npl: list[int]) -> dict[int, float]:
    out = subprocess.run([str(bin_dir / "llama-batched-bench"), "-m", str(model), "-t", str(threads),
                          "-tb", str(threads), "-c", str(n_ctx), "-b", "2048", "-ub", "512",
                          "-npp", str(pp), "-ntg", str(tg), "-npl", ",".join(map(str, npl)),
                          "--output-format", "jsonl"],
                         check=True, capture_output=True, text=True)
    result = {}
    for line in (out.stdout + out.stderr).splitlines():
        line = line.strip()
        if line.startswith("{") and '"speed_tg"' in line:
            row = json.loads(line)
            result[int(row["pl"])] = float(row["speed_tg"])
    return result


def ours_pp(model: _native.Model, threads: int, reps: int) -> float:
    ctx = _native.Context(model, n_ctx=1024, n_batch=2048, n_ubatch=512, n_threads=threads)
    rng = np.random.default_rng(0)
    batch = _native.Batch(512)
    times = []
    for _ in range(reps + 1):
        ctx.clear()
        batch.clear()
        batch.add_sequence(rng.integers(0, model.n_vocab, 512, dtype=np.int32), 0, 0)
        t0 = time.perf_counter()
        ctx.decode(batch)
        ctx.synchronize()
        times.append(time.perf_counter() - t0)
    return 512 / statistics.mean(times[1:])  # first run warms up, as llama-bench does


def ours_tg(model: _native.Model, threads: int, reps: int) -> float:
    """Greedy generation, one token per decode, sampled with a Sampler."""
    ctx = _native.Context(model, n_ctx=1024, n_threads=threads)
    batch = _native.Batch(8)
    sampler = _native.Sampler().add_greedy()
    times = []
    for _ in range(reps + 1):
        ctx.clear()
        batch.clear()
        idx = batch.add(model.token_bos or 0, 0, 0, True)
        ctx.decode(batch)
        t0 = time.perf_counter()
        for pos in range(1, 129):
            tok = sampler.sample(ctx, idx)
            batch.clear()
            idx = batch.add(tok, pos, 0, True)
            ctx.decode(batch)
        times.append(time.perf_counter() - t0)
    return 128 / statistics.mean(times[1:])


def ours_batched(model: _native.Model, threads: int, n_ctx: int, pp: int, tg: int, n_seq: int) -> float:
    """N sequences: all prompts prefilled, then one decode per step carrying
    one greedy-sampled token of every sequence. Returns generation tokens/s."""
    ctx = _native.Context(model, n_ctx=n_ctx, n_batch=2048, n_ubatch=512, n_seq_max=n_seq,
                          n_threads=threads, n_threads_batch=threads)
    rng = np.random.default_rng(n_seq)
    if n_seq * pp > 2048:
        raise SystemExit(f"{n_seq} prompts of {pp} tokens do not fit one 2048-token prefill batch")
    batch = _native.Batch(2048)
    samplers = [_native.Sampler().add_greedy() for _ in range(n_seq)]
    idx = [batch.add_sequence(rng.integers(0, model.n_vocab, pp, dtype=np.int32), 0, s) + pp - 1
           for s in range(n_seq)]
    ctx.decode(batch)
    t0 = time.perf_counter()
    for step in range(tg):
        toks = [samplers[s].sample(ctx, idx[s]) for s in range(n_seq)]
        batch.clear()
        for s in range(n_seq):
            idx[s] = batch.add(toks[s], pp + step, s, True)
        ctx.decode(batch)
    ctx.synchronize()
    return n_seq * tg / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3, help="repetitions inside one round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each side counts")
    ap.add_argument("--npl", default="1,4,8,16")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    model_path = args.model or default_model()
    npl = [int(x) for x in args.npl.split(",")]
    pp, tg = 128, 128
    n_ctx = (pp + tg) * max(npl)

    bin_dir = build_llama_tools("llama-bench", "llama-batched-bench")
    model = _native.Model(model_path)
    print(f"model: {model_path.name}  threads: {args.threads}\n{platform_line()}\n")

    # The two sides alternate, round after round, and each keeps its best
    # round: a burst of load from elsewhere then hurts neither side alone.
    ref: dict[str, float] = {}
    mine: dict[str, float] = {}
    ref_b: dict[int, float] = {}
    mine_b: dict[int, float] = {}

    def keep_best(into: dict, new: dict) -> None:
        for key, value in new.items():
            into[key] = max(into.get(key, 0.0), value)

    for _ in range(args.rounds):
        keep_best(ref, llama_bench(bin_dir, model_path, args.threads, args.reps))
        keep_best(mine, {"pp512": ours_pp(model, args.threads, args.reps),
                         "tg128": ours_tg(model, args.threads, args.reps)})
        keep_best(ref_b, batched_bench(bin_dir, model_path, args.threads, n_ctx, pp, tg, npl))
        keep_best(mine_b, {n: ours_batched(model, args.threads, n_ctx, pp, tg, n) for n in npl})

    rows = [(f"{k} (llama-bench)", ref[k], mine[k]) for k in ("pp512", "tg128")]
    rows += [(f"batched N={n} TG t/s (llama-batched-bench)", ref_b[n], mine_b[n]) for n in npl]
    print(f"| {'test':45} | {'llama.cpp t/s':>13} | {'pyllama t/s':>11} | {'ratio':>6} |")
    print(f"|{'-' * 47}|{'-' * 15}|{'-' * 13}|{'-' * 8}|")
    for name, r, m in rows:
        print(f"| {name:45} | {r:13.1f} | {m:11.1f} | {m / r:6.1%} |")
    if args.json:
        args.json.write_text(json.dumps({"rows": [{"test": n, "llama_cpp": r, "pyllama": m} for n, r, m in rows]},
                                        indent=2))


if __name__ == "__main__":
    main()
