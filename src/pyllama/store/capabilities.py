"""What a model can do, derived from its GGUF header, template and layers.

One function so that /api/show, /api/tags and the inference routes (which
reject e.g. ``tools`` for a model without the capability) always agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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
_GO_TOOLS = re.compile(r"\.Tools\b|\.ToolCalls\b")
_JINJA_TOOLS = re.compile(r"\btools\b")
_GO_SUFFIX = re.compile(r"\.Suffix\b")
_THINKING = re.compile(r"\.Thinking\b|\.Think\b|\bThinkLevel\b|<think>|\benable_thinking\b|\breasoning_content\b|\breasoning\b")
_FIM_KEYS = ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id")


def is_embedding_model(info: GGUFInfo | None) -> bool:
    if info is None:
        return False
    if info.arch_key("pooling_type") is not None:
        return True
    return info.architecture in _EMBEDDING_ARCHES


def compute_capabilities(
    info: GGUFInfo | None,
    template: str = "",
    has_projector: bool = False,
    extra: Iterable[str] = (),
) -> list[str]:
    """Capabilities of a model.

    ``template`` is the template that will be used for prompts: the TEMPLATE
    layer if there is one, else the GGUF ``tokenizer.chat_template``.
    ``extra`` are capabilities recorded in the config blob.
    """
    caps: set[str] = set(extra)
    if is_embedding_model(info):
        caps.add(EMBEDDING)
    else:
        caps.add(COMPLETION)
        if template:
            if _GO_TOOLS.search(template) or ("{%" in template and _JINJA_TOOLS.search(template)):
                caps.add(TOOLS)
            if _GO_SUFFIX.search(template):
                caps.add(INSERT)
            if _THINKING.search(template):
                caps.add(THINKING)
        if info is not None and any(info.kv.get(key) is not None for key in _FIM_KEYS):
            caps.add(INSERT)
    if has_projector:
        caps.add(VISION)
    if info is not None and (
        info.arch_key("vision.block_count") is not None or info.kv.get("clip.has_vision_encoder")
    ):
        caps.add(VISION)
    known = [cap for cap in ORDER if cap in caps]
    return known + sorted(caps - set(ORDER))
