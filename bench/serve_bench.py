"""`pyllama serve` over HTTP against llama-server from the same tree, on
the workloads where work can be saved: a shared system prompt, and users
returning to their conversations. Sides take turns (--passes), one server
alive at a time; both use their prompt caches as a client would.

    (a) --case shared:    N streams (--streams, default 8), each request = one
        shared ~1,000-token system prompt + a distinct 30-token user turn, 128
        generated tokens; --rounds requests per stream.
    (b) --case returning: --users users with 3-turn conversations over N
        slots; a turn = the conversation so far + 30 new tokens, up to 64
        generated; TTFT of turns 2 and 3 reported apart. llama-server runs
        with its default RAM cache and with --cache-ram 0. With --replies
        model (default) the conversation carries the text each server
        replied, as a chat client sends it back, and both sides get text
        prompts (greedy, so both reply alike); --replies random puts random
        ids in place of each reply (every turn then re-evaluates the reply).

    .venv/bin/python bench/serve_bench.py --case shared [--threads 2] [--passes 2]

Prompts are random ordinary token ids that survive detokenize -> tokenize
(engine_bench.round_trip_prompt): pyllama gets them as raw text through
/api/generate, llama-server as ids through /completion. Distinct-prompt
throughput (case c of issue #17) is engine_bench.py's table.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import uvloop

import msgspec

from common import build_dir, default_model, platform_line
from engine_bench import LlamaServer, OursHTTP, Phase, Sample, _TextPrompts, process_tree_rss, round_trip_prompt
from pyllama import _native
from rawhttp import post_lines

SHARED_TOKENS = 1000
TURN_TOKENS = 30


async def timed(side: LlamaServer | OursHTTP, prompt: list[int], n_predict: int,
                info: dict[str, float] | None = None) -> Sample:
    sample = Sample(time.perf_counter())
    async for arrival in side.generate(prompt, n_predict, True, info):
        sample.arrivals.append(arrival)
    return sample


async def shared_case(side: LlamaServer | OursHTTP, n: int, rounds: int, system: list[int],
                      turns: list[list[int]]) -> Phase:
    start = time.perf_counter()
    samples: list[Sample] = []

    async def worker(w: int) -> None:
        for r in range(rounds):
            samples.append(await timed(side, system + turns[w * rounds + r], 128))

    await asyncio.gather(*(worker(w) for w in range(n)))
    return Phase(n, samples, time.perf_counter() - start)


PerTurn = dict[int, list[float]]
Ask = Callable[[Any, int], Awaitable[tuple[float, Any, dict[str, float]]]]


async def returning_case(n: int, users: int, ask: Ask, empty: Any) -> dict[str, PerTurn]:
    """Per turn (1, 2, 3): TTFT, prompt tokens the server evaluated, its prompt
    and generation ms. ``n`` workers serve the users' turns in rounds;
    ``ask(history, turn)`` runs one turn and returns (TTFT, the history with
    this turn and its reply, the server's counts)."""
    history = [empty for _ in range(users)]
    stats: dict[str, PerTurn] = {key: {1: [], 2: [], 3: []} for key in ("ttft", "prompt_n", "prompt_ms", "eval_ms")}
    for turn in (1, 2, 3):
        queue = list(range(users))

        async def worker() -> None:
            while queue:
                u = queue.pop(0)
                first, history[u], info = await ask(history[u], turn)
                stats["ttft"][turn].append(first)
                for key in ("prompt_n", "prompt_ms", "eval_ms"):
                    stats[key][turn].append(info.get(key, -1))

        await asyncio.gather(*(worker() for _ in range(n)))
    return stats


def new_turn(turn: int) -> int:
    return TURN_TOKENS if turn > 1 else 300


def random_replies(side: LlamaServer | OursHTTP, draw: Callable[[int], list[int]]) -> Ask:
    """Token-id conversations; random ids stand in for each reply."""
    async def ask(history: list[int], turn: int) -> tuple[float, list[int], dict[str, float]]:
        prompt = history + draw(new_turn(turn))
        info: dict[str, float] = {}
        sample = await timed(side, prompt, 64, info)
        return sample.ttft, prompt + draw(sample.tokens), info
    return ask


def model_replies(side: LlamaServer | OursHTTP, say: Callable[[int], str]) -> Ask:
    """Text conversations carrying the text each reply streamed."""
    async def ask(history: str, turn: int) -> tuple[float, str, dict[str, float]]:
        prompt = history + say(new_turn(turn))
        first, reply, info = await text_turn(side, prompt, 64)
        return first, prompt + reply, info
    return ask


async def text_turn(side: LlamaServer | OursHTTP, text: str, n_predict: int) -> tuple[float, str, dict[str, float]]:
    """One streamed turn with a text prompt: TTFT, the reply's text, and the
    server's own counts (prompt tokens evaluated, prompt and generation ms)."""
    if isinstance(side, OursHTTP):
        path = "/api/generate"
        body = {"model": "bench", "prompt": text, "raw": True, "stream": True,
                "options": {"num_predict": n_predict, "temperature": 0, "num_ctx": side.n_ctx}}
    else:
        path = "/completion"
        body = {"prompt": text, "n_predict": n_predict, "stream": True, "cache_prompt": True, "temperature": 0}
    start, first, reply, info = time.perf_counter(), 0.0, [], {}
    async for line in post_lines("127.0.0.1", side.port, path, msgspec.json.encode(body)):
        if isinstance(side, LlamaServer):
            if not line.startswith(b"data: "):
                continue
            line = line[6:]
        chunk = msgspec.json.decode(line)
        piece = chunk.get("response", chunk.get("content", ""))
        if piece and not first:
            first = time.perf_counter()
        reply.append(piece)
        if chunk.get("done"):
            info = {"prompt_n": chunk.get("prompt_eval_count", 0), "prompt_ms": chunk.get("prompt_eval_duration", 0) / 1e6,
                    "eval_ms": chunk.get("eval_duration", 0) / 1e6}
        elif chunk.get("stop"):
            t = chunk.get("timings", {})
            info = {"prompt_n": t.get("prompt_n", 0), "prompt_ms": t.get("prompt_ms", 0), "eval_ms": t.get("predicted_ms", 0)}
    return (first or time.perf_counter()) - start, "".join(reply), info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=["shared", "returning"], default="shared")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=4096, help="context per slot")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replies", choices=["model", "random"], default="model",
                        help="returning case: carry each reply's text, or random ids in its place")
    parser.add_argument("--sides", default="", help="comma-separated subset of the sides (default: all)")
    parser.add_argument("--cache-mib", type=int, default=None,
                        help="host prompt cache budget for both sides (PYLLAMA_PROMPT_CACHE_MIB, --cache-ram); "
                             "default: each side's own default")
    args = parser.parse_args()
    model = args.model or default_model()
    binary = build_dir() / "bin" / "llama-server"
    if not binary.exists():
        from common import build_llama_tools

        binary = build_llama_tools("llama-server") / "llama-server"
    vocab_model = _native.Model(model, vocab_only=True)
    vocab = (1000, vocab_model.n_vocab - 1000)
    texts = _TextPrompts(vocab_model)
    n = args.streams
    def llama_server() -> LlamaServer:
        server = LlamaServer(binary, model, args.threads, args.ctx, n)
        if args.cache_mib is not None:
            server.cmd += ["--cache-ram", str(args.cache_mib)]
        return server

    def pyllama() -> OursHTTP:
        ours = OursHTTP(model, args.threads, args.ctx, n, texts)
        if args.cache_mib is not None:
            ours.env["PYLLAMA_PROMPT_CACHE_MIB"] = str(args.cache_mib)
        return ours

    sides: dict[str, Callable[[], LlamaServer | OursHTTP]] = {"llama-server": llama_server, "pyllama": pyllama}
    if args.case == "returning":
        def no_cache() -> LlamaServer:
            server = LlamaServer(binary, model, args.threads, args.ctx, n)
            server.cmd += ["--cache-ram", "0"]
            return server
        sides["llama-server -cram 0"] = no_cache
    if args.sides:
        sides = {name: make for name, make in sides.items() if name in args.sides.split(",")}

    async def run() -> dict[str, list[object]]:
        out: dict[str, list[object]] = {name: [] for name in sides}
        for turn in range(args.passes):
            for name, make in sides.items():
                rng = np.random.default_rng(args.seed + turn)  # the same prompts for every side
                draw = lambda size: round_trip_prompt(vocab_model, rng, vocab, size)  # noqa: E731
                side = make()
                await side.start()
                try:
                    await timed(side, draw(50), 8)  # warm-up
                    if args.case == "shared":
                        system = draw(SHARED_TOKENS)
                        turns = [draw(TURN_TOKENS) for _ in range(n * args.rounds)]
                        phase = await shared_case(side, n, args.rounds, system, turns)
                        out[name].append(phase)
                        print(f"# pass {turn} {name}: {phase.aggregate:.1f} tok/s, TTFT p50 {phase.pct(50):.2f} s, "
                              f"p95 {phase.pct(95):.2f} s, load avg {os.getloadavg()[0]:.2f}", flush=True)
                    else:
                        if args.replies == "model":
                            ask = model_replies(side, lambda size: texts[tuple(draw(size))])
                            stats = await returning_case(n, args.users, ask, "")
                        else:
                            stats = await returning_case(n, args.users, random_replies(side, draw), [])
                        out[name].append(stats["ttft"])
                        print(f"# pass {turn} {name}: " + " | ".join(
                            f"{label} by turn " + ", ".join(f"{t}: {how(v):{fmt}}" for t, v in stats[key].items())
                            for label, key, how, fmt in (
                                ("TTFT p50 s", "ttft", statistics.median, ".2f"),
                                ("prompt tokens evaluated, mean", "prompt_n", statistics.mean, ".0f"),
                                ("server prompt ms p50", "prompt_ms", statistics.median, ".0f"),
                                ("server generation ms p50", "eval_ms", statistics.median, ".0f"))), flush=True)
                    out[name].append(("rss", process_tree_rss(side.pid)))
                finally:
                    await side.stop()
        return out

    results = uvloop.run(run())
    replies = f"replies {args.replies} | " if args.case == "returning" else ""
    print(f"model: {model.name} | threads {args.threads} | ctx/slot {args.ctx} | {n} slots | case {args.case} "
          f"| {replies}{args.passes} passes | load avg {os.getloadavg()[0]:.2f}")
    print(f"platform: {platform_line()}\n")
    rss = {name: max(r[1] for r in rows if isinstance(r, tuple)) for name, rows in results.items()}
    if args.case == "shared":
        print("| side | agg tok/s | vs llama-server | TTFT p50 ms | vs | TTFT p95 ms | vs | peak RSS MiB |")
        print("|---|---|---|---|---|---|---|---|")
        pooled = {}
        for name, rows in results.items():
            phases = [p for p in rows if isinstance(p, Phase)]
            pooled[name] = Phase(n, [s for p in phases for s in p.samples], sum(p.wall for p in phases))
        ref = pooled.get("llama-server", next(iter(pooled.values())))  # the first side without it
        for name, p in pooled.items():
            print(f"| {name} | {p.aggregate:.1f} | {p.aggregate / ref.aggregate:.2f} | {p.pct(50) * 1e3:.0f} "
                  f"| {p.pct(50) / ref.pct(50):.2f} | {p.pct(95) * 1e3:.0f} | {p.pct(95) / ref.pct(95):.2f} "
                  f"| {rss[name] / 2**20:.0f} |")
    else:
        print("| side | TTFT p50 turn 1 ms | turn 2 ms | turn 3 ms | turns 2-3 p50 vs llama-server -cram 0 "
              "| peak RSS MiB |")
        print("|---|---|---|---|---|---|")
        merged = {name: {t: [x for r in rows if isinstance(r, dict) for x in r[t]] for t in (1, 2, 3)}
                  for name, rows in results.items()}
        ref = merged.get("llama-server -cram 0", next(iter(merged.values())))
        ref_later = statistics.median(ref[2] + ref[3])
        for name, m in merged.items():
            later = statistics.median(m[2] + m[3])
            print(f"| {name} | {statistics.median(m[1]) * 1e3:.0f} | {statistics.median(m[2]) * 1e3:.0f} "
                  f"| {statistics.median(m[3]) * 1e3:.0f} | {later / ref_later:.2f} | {rss[name] / 2**20:.0f} |")


if __name__ == "__main__":
    main()
