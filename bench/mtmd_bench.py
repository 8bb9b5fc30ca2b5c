"""One image through pyllama._native's Projector against llama.cpp's own
`llama-mtmd-cli`, same tree, same model, projector, image, prompt, threads.

  encode  time to run the vision tower + projector over one image
  ttft    time to first token: encode + decode of the prompt's text and
          image rows (llama.cpp's prompt-eval counter) + the first sample

The projector is the test fixture's random-weight llava-style one, built at
a bench size (224 px, 14 px patches: 256 image tokens) so the encode is
measurable. Sides alternate run by run; medians and ratios are printed.

    .venv/bin/python bench/mtmd_bench.py [--model PATH] [--threads 2] [--runs 5]
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from common import ROOT, build_llama_tools, default_model, platform_line
from pyllama import _native

BENCH_SHAPE = {"image_size": 224, "patch_size": 14, "n_embd": 256, "n_head": 4, "n_ff": 1024, "n_layer": 4,
               "mlp_hidden": 576}
PROMPT = "Describe this image in one sentence."


def make_projector(out: Path, model: Path) -> Path:
    spec = importlib.util.spec_from_file_location("make_tiny_models", ROOT / "tests" / "fixtures" / "make_tiny_models.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.write_mmproj(out, model, **BENCH_SHAPE)


def cli_run(bin_dir: Path, model: Path, mmproj: Path, image: Path, threads: int) -> dict[str, float]:
    """One llama-mtmd-cli single turn, one generated token; its own log gives
    the encode time and the prompt-eval time (text and image rows)."""
    out = subprocess.run([str(bin_dir / "llama-mtmd-cli"), "-m", str(model), "--mmproj", str(mmproj),
                          "--image", str(image), "-p", PROMPT, "-n", "1", "-t", str(threads), "-tb", str(threads),
                          "--temp", "0", "-c", "2048", "-v"],  # -v: libllama's perf lines
                         capture_output=True, text=True, check=True)
    log = out.stdout + out.stderr
    enc = re.search(r"mtmd batch encoding done in (\d+) ms", log)
    pe = re.search(r"prompt eval time =\s+([\d.]+) ms /\s+(\d+) tokens", log)
    if not enc or not pe:
        raise RuntimeError(f"llama-mtmd-cli printed no timings:\n{log[-3000:]}")
    encode_ms = float(enc.group(1))
    return {"encode_ms": encode_ms, "ttft_ms": encode_ms + float(pe.group(1)), "n_prompt": int(pe.group(2))}


class Ours:
    """Model, projector and context loaded once, as a server keeps them."""

    def __init__(self, model: Path, mmproj: Path, threads: int):
        self.model = _native.Model(model)
        self.projector = _native.Projector(mmproj, self.model, n_threads=threads)
        self.ctx = _native.Context(self.model, n_ctx=2048, n_threads=threads)
        self.batch = _native.Batch(self.ctx.n_batch)
        chat = _native.ChatTemplates(self.model)
        # What llama-mtmd-cli decodes: the marker before the prompt in one user
        # turn, and only what that turn adds to an empty chat, which leaves out
        # the template's default system prompt (SmolLM2's ChatML). The
        # "prompt tokens" line shows whether both sides decode the same count.
        full = chat.apply([{"role": "user", "content": self.projector.marker + PROMPT}])["prompt"]
        start = full.find("<|im_start|>user")
        self.prompt = full[start:] if start > 0 else full

    def run(self, image: bytes) -> dict[str, float]:
        ctx, batch, projector = self.ctx, self.batch, self.projector
        ctx.clear()
        ctx.perf_reset()
        t0 = time.perf_counter()
        chunks = projector.tokenize(self.prompt, [projector.bitmap_from_bytes(image)], add_special=True)
        pos, encode_s = 0, 0.0
        for i, chunk in enumerate(chunks):
            batch.clear()
            last = i == len(chunks) - 1
            if chunk.is_media:
                te = time.perf_counter()
                embd = projector.encode(chunk)
                encode_s += time.perf_counter() - te
                batch.add_embeddings(embd, chunk.positions(pos), 0, logits_last=last)
                ctx.decode(batch, non_causal=projector.non_causal(chunk))
            else:
                batch.add_sequence(chunk.tokens, pos, 0, logits_last=last)
                ctx.decode(batch)
            pos += chunk.n_pos
        int(np.argmax(ctx.logits(len(batch) - 1)))
        wall = time.perf_counter() - t0
        perf = ctx.perf()
        return {"encode_ms": encode_s * 1000, "ttft_ms": encode_s * 1000 + perf["t_p_eval_ms"],
                "wall_ttft_ms": wall * 1000, "n_prompt": chunks.n_tokens}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--image", type=Path, default=ROOT / "llama.cpp" / "tools" / "mtmd" / "test-1.jpeg")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    model = args.model or default_model()
    bin_dir = build_llama_tools("llama-mtmd-cli")
    with tempfile.TemporaryDirectory() as tmp:
        mmproj = make_projector(Path(tmp) / "bench-mmproj.gguf", model)
        ours = Ours(model, mmproj, args.threads)
        image = args.image.read_bytes()
        ours.run(image)  # warm-up, as the CLI's own warm-up pass
        rows: dict[str, list[dict[str, float]]] = {"pyllama": [], "llama-mtmd-cli": []}
        for _ in range(args.runs):
            rows["pyllama"].append(ours.run(image))
            rows["llama-mtmd-cli"].append(cli_run(bin_dir, model, mmproj, args.image, args.threads))
    print(platform_line())
    print(f"model {model.name}, projector {BENCH_SHAPE}, image {args.image.name}, threads {args.threads}, "
          f"runs {args.runs} (medians)")
    n_ours = rows["pyllama"][0]["n_prompt"]
    n_cli = rows["llama-mtmd-cli"][0]["n_prompt"]
    print(f"prompt tokens: pyllama {n_ours}, llama-mtmd-cli {n_cli}")
    med = {side: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for side, rs in rows.items()}
    print(f"{'metric':<12}{'pyllama ms':>12}{'cli ms':>10}{'ratio':>8}")
    for key in ("encode_ms", "ttft_ms"):
        a, b = med["pyllama"][key], med["llama-mtmd-cli"][key]
        print(f"{key[:-3]:<12}{a:>12.1f}{b:>10.1f}{a / b if b else float('nan'):>8.2f}")
    print(f"pyllama wall-clock ttft (decode image bytes .. first token): {med['pyllama']['wall_ttft_ms']:.1f} ms")


if __name__ == "__main__":
    main()
