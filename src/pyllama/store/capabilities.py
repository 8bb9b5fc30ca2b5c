"""Capability names and the GGUF facts they rest on.

The rules themselves (which template constructs mean tools, thinking,
insert) live above the store, in ``pyllama.templates.capabilities``.
"""

from __future__ import annotations

from pyllama.store.gguf_meta import GGUFInfo

COMPLETION = "completion"
TOOLS = "tools"
INSERT = "insert"
VISION = "vision"
EMBEDDING = "embedding"
THINKING = "thinking"

# Canonical output order (Ollama's).
ORDER = (COMPLETION, TOOLS, INSERT, VISION, EMBEDDING, THINKING, "image", "audio")

_EMBEDDING_ARCHES = frozenset({"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "t5encoder", "modern-bert"})


def is_embedding_model(info: GGUFInfo | None) -> bool:
    if info is None:
        return False
    if info.arch_key("pooling_type") is not None:
        return True
    return info.architecture in _EMBEDDING_ARCHES
