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
AUDIO = "audio"

# Canonical output order (Ollama's).
ORDER = (COMPLETION, TOOLS, INSERT, VISION, EMBEDDING, THINKING, "image", AUDIO)

_EMBEDDING_ARCHES = frozenset({"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "t5encoder", "modern-bert"})


def projector_inputs(info: GGUFInfo | None) -> set[str]:
    """What a projector GGUF takes: ``vision`` unless it says it has no vision encoder,
    ``audio`` when it has an audio encoder."""
    if info is None:
        return {VISION}
    caps = set() if info.kv.get("clip.has_vision_encoder") is False else {VISION}
    if info.kv.get("clip.has_audio_encoder"):
        caps.add(AUDIO)
    return caps


def is_embedding_model(info: GGUFInfo | None) -> bool:
    if info is None:
        return False
    if info.arch_key("pooling_type") is not None:
        return True
    return info.architecture in _EMBEDDING_ARCHES
