"""Capability names and the GGUF facts they rest on.

The rules themselves (which template constructs mean tools, thinking,
insert) live above the store, in ``pyllama.templates.capabilities``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pyllama.store.gguf_meta import GGUFError, GGUFInfo, read_gguf

COMPLETION = "completion"
TOOLS = "tools"
INSERT = "insert"
VISION = "vision"
AUDIO = "audio"
EMBEDDING = "embedding"
THINKING = "thinking"
RERANK = "rerank"  # not an Ollama capability: pyllama's /api/rerank, /v1/rerank, /rerank

# Canonical output order (Ollama's, rerank beside embedding).
ORDER = (COMPLETION, TOOLS, INSERT, VISION, EMBEDDING, RERANK, THINKING, "image", "audio")
RANK_POOLING = 4  # llama.cpp's LLAMA_POOLING_TYPE_RANK: a classification head scores the input

_EMBEDDING_ARCHES = frozenset({"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "t5encoder", "modern-bert"})


def projector_capabilities(projectors: Sequence[Path]) -> list[str]:
    """What a model's projector adds besides ``vision`` (which any projector gives, as in
    Ollama): ``audio`` when its GGUF has an audio encoder."""
    if not projectors:
        return []
    try:
        info = read_gguf(projectors[0])
    except (GGUFError, OSError):
        return []
    return [AUDIO] if info.kv.get("clip.has_audio_encoder") else []


def is_embedding_model(info: GGUFInfo | None) -> bool:
    if info is None:
        return False
    if info.arch_key("pooling_type") is not None:
        return True
    return info.architecture in _EMBEDDING_ARCHES


def is_reranker(info: GGUFInfo | None) -> bool:
    """A cross-encoder: its GGUF asks for rank pooling (bge-reranker, jina-reranker, Qwen3-Reranker)."""
    return info is not None and info.arch_key("pooling_type") == RANK_POOLING
