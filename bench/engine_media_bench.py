"""Image requests through pyllama's Engine: 4 concurrent requests vs the
same 4 one after another, and time to first token of one image request
next to the same image through the binding alone (bench/mtmd_bench.py's
chunk-by-chunk loop on one context, without the chat template's system
prompt), so the engine's overhead shows.

Each request has its own image (no prefix or encode cache helps), 16 new
tokens, greedy. The projector is the fixture's random-weight llava-style
one at bench size (224 px, 14 px patches: 256 image tokens).

    .venv/bin/python bench/engine_media_bench.py [--model PATH] [--threads 2] [--runs 3]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from common import default_model, platform_line
from mtmd_bench import PROMPT, Ours, make_projector
from pyllama import _native
from pyllama.engine import Chunk, Engine, GenerateRequest

N_NEW = 16


def png(seed: int) -> bytes:
    import struct
    import zlib

    rgb = np.random.default_rng(seed).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(224))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 224, 224, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def request(engine: Engine, image: bytes) -> GenerateRequest:
    prompt = _native.ChatTemplates(engine.model).apply([{"role": "user", "content": "[img-0]" + PROMPT}])["prompt"]
    return GenerateRequest(prompt=prompt, images=[image])


def ttft(engine: Engine, image: bytes) -> float:
    t0 = time.perf_counter()
    handle = engine.submit(request(engine, image), {"temperature": 0, "num_predict": 1})
    for event in handle:
        if isinstance(event, Chunk) and event.tokens:
            break
    first = time.perf_counter() - t0
    handle.result()
    return first


def batch(engine: Engine, images: list[bytes], together: bool) -> float:
    opts = {"temperature": 0, "num_predict": N_NEW}
    t0 = time.perf_counter()
    if together:
        handles = [engine.submit(request(engine, i), opts) for i in images]
        for h in handles:
            h.result()
    else:
        for i in images:
            engine.submit(request(engine, i), opts).result()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    model_path = args.model or default_model()
    seed = iter(range(10_000))
    with tempfile.TemporaryDirectory() as tmp:
        mmproj = make_projector(Path(tmp) / "bench-mmproj.gguf", model_path)
        with Engine(model_path, n_ctx=4 * 1024, n_parallel=4, n_batch=512, n_threads=args.threads,
                    projector=mmproj) as engine:
            ttft(engine, png(next(seed)))  # warm-up
            firsts = [ttft(engine, png(next(seed))) for _ in range(args.runs)]
            seq = [batch(engine, [png(next(seed)) for _ in range(4)], False) for _ in range(args.runs)]
            par = [batch(engine, [png(next(seed)) for _ in range(4)], True) for _ in range(args.runs)]
        native = Ours(model_path, mmproj, args.threads)
        native.run(png(next(seed)))  # warm-up
        binding = [native.run(png(next(seed)))["wall_ttft_ms"] / 1000 for _ in range(args.runs)]
    print(platform_line())
    print(f"model {model_path.name}, 256 image tokens, threads {args.threads}, runs {args.runs} (medians)")
    e, b = statistics.median(firsts), statistics.median(binding)
    print(f"ttft, one image request: engine {e * 1000:.1f} ms, binding alone {b * 1000:.1f} ms, ratio {e / b:.2f}")
    s, p = statistics.median(seq), statistics.median(par)
    print(f"4 image requests x {N_NEW} tokens: sequential {s:.2f} s, concurrent {p:.2f} s, speed-up {s / p:.2f}x")


if __name__ == "__main__":
    main()
