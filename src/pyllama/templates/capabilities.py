"""Model capabilities with Ollama's rules, decided from the parsed template.

The capability names live in ``pyllama.store.capabilities``; this module
decides the way Ollama does: ``tools`` when the template uses ``.Tools``, ``insert`` when it uses
``.Suffix``, ``thinking`` when thinking tags can be inferred around
``.Thinking`` (or the family is gpt-oss). Models without a TEMPLATE layer
use their GGUF Jinja template, judged by llama.cpp's own analysis when a
``ChatTemplates`` is at hand, else by what the template text mentions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from pyllama.store.capabilities import (
    COMPLETION,
    EMBEDDING,
    INSERT,
    ORDER,
    RERANK,
    THINKING,
    TOOLS,
    VISION,
    is_embedding_model,
    is_reranker,
)
from pyllama.store.capabilities import projector_capabilities
from pyllama.store.gguf_meta import GGUFInfo
from pyllama.store.model import LocalModel
from pyllama.templates.gotemplate import TemplateError
from pyllama.templates.ollama import parse_ollama_template

_FIM_KEYS = ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id")
_JINJA_TOOLS = re.compile(r"\btools\b")
_JINJA_THINKING = re.compile(r"<think>|\benable_thinking\b|\breasoning_content\b|<\|channel\|>")
_GPT_OSS = ("gptoss", "gpt-oss")


def go_template_capabilities(text: str, family: str = "") -> set[str]:
    """What a TEMPLATE layer enables (Ollama's ``Capabilities`` template checks)."""
    caps: set[str] = set()
    try:
        tmpl = parse_ollama_template(text)
    except TemplateError:
        return caps
    if "tools" in tmpl.vars:
        caps.add(TOOLS)
    if "suffix" in tmpl.vars:
        caps.add(INSERT)
    opening, closing = tmpl.thinking_tags()
    if (opening and closing) or family in _GPT_OSS:
        caps.add(THINKING)
    return caps


def jinja_template_capabilities(text: str, jinja_caps: Mapping[str, bool] | None = None) -> set[str]:
    """What a GGUF Jinja template enables; ``jinja_caps`` from ``ChatTemplates`` wins when given.

    ``jinja_caps`` is ``ChatTemplates.caps`` plus ``supports_thinking``.
    """
    caps: set[str] = set()
    if jinja_caps is not None:
        if jinja_caps.get("supports_tools") or jinja_caps.get("supports_tool_calls"):
            caps.add(TOOLS)
        if jinja_caps.get("supports_thinking"):
            caps.add(THINKING)
        return caps
    if "{%" in text and _JINJA_TOOLS.search(text):
        caps.add(TOOLS)
    if _JINJA_THINKING.search(text):
        caps.add(THINKING)
    return caps


def model_capabilities(info: GGUFInfo | None, *, go_template: str | None = None, jinja_template: str = "",
                       has_projector: bool = False, family: str = "", extra: Iterable[str] = (),
                       jinja_caps: Mapping[str, bool] | None = None) -> list[str]:
    """Capabilities in Ollama's order.

    ``go_template`` is the TEMPLATE layer (None when the model has none, then
    ``jinja_template``/``jinja_caps`` describe the GGUF template); ``extra``
    are capabilities recorded in the config blob.
    """
    caps: set[str] = set(extra)
    caps.add(EMBEDDING if is_embedding_model(info) else COMPLETION)
    if is_reranker(info):
        caps.add(RERANK)
    if has_projector or (info is not None and (
            info.arch_key("vision.block_count") is not None or info.kv.get("clip.has_vision_encoder"))):
        caps.add(VISION)
    if go_template is not None:
        caps |= go_template_capabilities(go_template, family)
    else:
        caps |= jinja_template_capabilities(jinja_template, jinja_caps)
        if info is not None and any(info.kv.get(key) is not None for key in _FIM_KEYS):
            caps.add(INSERT)  # Jinja models fill in the middle with their FIM tokens
    known = [cap for cap in ORDER if cap in caps]
    return known + sorted(caps - set(ORDER))


def stored_model_capabilities(local: LocalModel, info: GGUFInfo | None = None) -> list[str]:
    """A stored model's capabilities: the one list /api/show, /api/tags and the inference routes use."""
    info = info if info is not None else local.gguf()
    chat = info.kv.get("tokenizer.chat_template") if info is not None else None
    return model_capabilities(info, go_template=local.template, jinja_template=chat if isinstance(chat, str) else "",
                              has_projector=bool(local.projector_paths), family=local.config.model_family,
                              extra=[*local.config.capabilities, *projector_capabilities(local.projector_paths)])


def required_capabilities(*, tools: bool = False, think: bool = False, images: bool = False,
                          suffix: bool = False) -> list[str]:
    """Capabilities a request needs (the route answers 400 when one is missing)."""
    needed = [COMPLETION]
    if tools:
        needed.append(TOOLS)
    if suffix:
        needed.append(INSERT)
    if images:
        needed.append(VISION)
    if think:
        needed.append(THINKING)
    return needed
