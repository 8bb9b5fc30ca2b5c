"""How much memory a runner will need, and how much the machine has free.

The estimate is read from the GGUF header alone (no loading), so the
scheduler can decide before starting a process: weights (the file size),
the KV cache for the whole context, and an allowance for llama.cpp's
compute buffers (dominated by one micro-batch of logits).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyllama.store.gguf_meta import GGUFError, read_gguf

_TYPE_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "q4_1": 20 / 32,
               "q5_0": 22 / 32, "q5_1": 24 / 32, "iq4_nl": 18 / 32}
_COMPUTE_FIXED = 32 << 20


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a loaded model occupies; ``total`` is what /api/ps reports as size."""

    weights: int
    kv_cache: int
    compute: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute


def _per_layer(value: Any, n_layer: int, default: int) -> list[int]:
    """A per-layer hyperparameter that GGUF stores as one number or an array."""
    if isinstance(value, list) and value:
        return [int(v) for v in value[:n_layer]] + [int(value[-1])] * max(0, n_layer - len(value))
    if isinstance(value, (int, float)):
        return [int(value)] * n_layer
    return [default] * n_layer


def estimate_memory(path: str | os.PathLike[str], n_ctx: int, *, n_ubatch: int = 512,
                    type_k: str = "f16", type_v: str = "f16") -> MemoryEstimate:
    """Weights + KV cache (n_layer x n_ctx x (n_embd_k_gqa + n_embd_v_gqa))
    + compute allowance, from the GGUF header. Raises GGUFError for a file
    that is not a readable GGUF."""
    path = Path(path)
    info = read_gguf(path)
    weights = path.stat().st_size
    n_layer = int(info.arch_key("block_count") or 0)
    n_embd = int(info.arch_key("embedding_length") or 0)
    if n_layer <= 0 or n_embd <= 0:
        raise GGUFError(f"{path.name}: no block_count/embedding_length for architecture '{info.architecture}'")
    n_head = _per_layer(info.arch_key("attention.head_count"), n_layer, 1)
    n_head_kv = _per_layer(info.arch_key("attention.head_count_kv"), n_layer, 0)
    kv_elems = 0.0
    for layer in range(n_layer):
        heads = max(n_head[layer], 1)
        heads_kv = n_head_kv[layer] or heads
        key_len = int(info.arch_key("attention.key_length") or n_embd // heads)
        value_len = int(info.arch_key("attention.value_length") or n_embd // heads)
        kv_elems += heads_kv * key_len * type_bytes(type_k) + heads_kv * value_len * type_bytes(type_v)
    kv_cache = int(kv_elems * n_ctx)
    n_vocab = _vocab_size(info.kv, info.architecture)
    compute = n_ubatch * n_vocab * 4 + n_ubatch * n_embd * 4 * 16 + _COMPUTE_FIXED
    return MemoryEstimate(weights=weights, kv_cache=kv_cache, compute=compute)


def type_bytes(cache_type: str) -> float:
    """Bytes per element of a KV cache type (f16 = 2)."""
    try:
        return _TYPE_BYTES[cache_type.lower()]
    except KeyError:
        raise ValueError(f"unsupported KV cache type '{cache_type}' (use one of {', '.join(_TYPE_BYTES)})") from None


def _vocab_size(kv: dict[str, Any], arch: str) -> int:
    size = kv.get(f"{arch}.vocab_size")
    if isinstance(size, int) and size > 0:
        return size
    tokens = kv.get("tokenizer.ggml.tokens")
    length = getattr(tokens, "length", None)  # ElidedArray keeps only the length
    if isinstance(length, int):
        return length
    if isinstance(tokens, list):
        return len(tokens)
    return 32000


def available_ram(meminfo: str | os.PathLike[str] = "/proc/meminfo") -> int:
    """MemAvailable in bytes (what can be used without swapping)."""
    try:
        with open(meminfo, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
    return int(pages) * int(os.sysconf("SC_PAGE_SIZE"))


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process (0 when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def gpu_devices() -> list[dict[str, Any]]:
    """GPU devices llama.cpp sees (empty on a CPU-only build)."""
    from pyllama import _native

    return [d for d in _native.devices() if d.get("type") in ("gpu", "igpu")]


def available_vram() -> int:
    """Free memory summed over the GPU devices (0 without a GPU)."""
    return sum(int(d.get("memory_free", 0)) for d in gpu_devices())
