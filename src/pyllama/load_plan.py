"""What loading a model takes: its memory estimate and the runner's LoadSpec.

The scheduler decides *whether* and *when* a runner loads (limits, memory
fit, keep_alive); this module says *what* a load is for one model and one
set of runner options, as plain functions of their inputs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pyllama.config import Config
from pyllama.model_ref import ModelRef, RunnerOptions
from pyllama.runner import LoadSpec, MemoryEstimate, estimate_memory
from pyllama.store.gguf_meta import GGUFError

EMBED_SEQUENCES = 16  # inputs (or rerank pairs) an embeddings runner pools in one decode
_LOAD_MODE = {None: "auto", True: "mmap", False: "none"}  # use_mmap -> llama.cpp's load mode


class LoadPlanError(RuntimeError):
    """A file the load needs cannot be read (``unable to load ...``)."""


def estimate_load(ref: ModelRef, options: RunnerOptions, n_parallel: int, embeddings: bool,
                  kv_cache_type: str) -> MemoryEstimate:
    """Weights (with adapters, projector and, for generation, the draft model and
    its KV cache) plus the KV cache and compute buffers for ``n_parallel`` slots
    of ``num_ctx`` (an embeddings runner: one stream of ``num_ctx``)."""
    n_ctx = options.num_ctx * (1 if embeddings else n_parallel)
    n_ubatch = min(options.num_batch, 512)
    try:
        estimate = estimate_memory(ref.path, n_ctx, n_ubatch=n_ubatch, type_k=kv_cache_type, type_v=kv_cache_type)
    except (GGUFError, OSError) as exc:
        raise LoadPlanError(f"unable to load model: {ref.path}: {exc}") from None
    try:
        extra = sum(path.stat().st_size for path in (*ref.adapters, *filter(None, [ref.projector])))
    except OSError as exc:
        raise LoadPlanError(f"unable to load LoRA adapter for model {ref.path}: {exc}") from None
    if ref.draft is not None and not embeddings:
        try:
            extra += estimate_memory(ref.draft, n_ctx, n_ubatch=n_ubatch, type_k=kv_cache_type,
                                     type_v=kv_cache_type).total
        except (GGUFError, OSError) as exc:
            raise LoadPlanError(f"unable to load draft model {ref.draft} for model {ref.path}: {exc}") from None
    return replace(estimate, weights=estimate.weights + extra) if extra else estimate


def load_spec(ref: ModelRef, key: tuple[Any, ...], options: RunnerOptions, config: Config, *, n_parallel: int,
              n_gpu_layers: int, rpc_servers: tuple[str, ...], tensor_split: tuple[float, ...]) -> LoadSpec:
    """The runner's LoadSpec. ``key`` is the scheduler's (weights, adapters,
    embeddings, projector, draft). A generation runner has ``n_parallel`` slots
    of ``num_ctx``; an embeddings (and rerank) runner keeps one KV stream of
    ``num_ctx`` and pools up to EMBED_SEQUENCES whole inputs per decode, from all
    the requests it holds, and neither drafts nor keeps a prompt cache."""
    embeddings = bool(key[2])
    n_seq, n_ctx = (EMBED_SEQUENCES, options.num_ctx) if embeddings else (n_parallel, options.num_ctx * n_parallel)
    return LoadSpec(model=str(ref.path), n_ctx=n_ctx, n_parallel=n_seq, n_batch=options.num_batch,
                    n_threads=options.num_thread, embeddings=embeddings, n_gpu_layers=n_gpu_layers,
                    flash_attn=config.flash_attention, type_k=config.kv_cache_type, type_v=config.kv_cache_type,
                    lora=list(key[1]), main_gpu=options.main_gpu, load_mode=_LOAD_MODE[options.use_mmap],
                    rpc_servers=list(rpc_servers), tensor_split=list(tensor_split), projector=key[3],
                    draft="" if embeddings else key[4], prompt_cache_mib=0 if embeddings else config.prompt_cache_mib,
                    thread_wait=config.thread_wait)
