"""A stored model as the inference routes see it: capabilities, vocabulary, prompt rendering.

Built in a worker thread (GGUF header, vocabulary load, template
rendering all block), once per request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyllama.model_ref import ModelRef
from pyllama.server.checks import think_requested
from pyllama.server.errors import RequestError
from pyllama.store.capabilities import COMPLETION, INSERT, THINKING, TOOLS, VISION
from pyllama.store.gguf_meta import GGUFError, GGUFInfo, read_gguf
from pyllama.store.model import LocalModel
from pyllama.templates import RenderedPrompt, TemplateError, build_prompt, load_chat_templates
from pyllama.templates.capabilities import stored_model_capabilities

if TYPE_CHECKING:
    from pyllama._native import ChatTemplates, Model

log = logging.getLogger(__name__)

NO_VISION = "this model is missing data required for image input"


@dataclass
class ModelView:
    """A stored model plus what prompting it needs (built in a worker thread)."""

    local: LocalModel
    ref: ModelRef
    info: GGUFInfo | None
    capabilities: list[str]
    chat: ChatTemplates

    @property
    def vocab(self) -> Model:
        return self.chat.model

    @property
    def full_name(self) -> str:
        return self.local.name.display_full

    def count_tokens(self, text: str) -> int:
        return len(self.vocab.tokenize(text, add_special=True, parse_special=True))

    def fim_tokens(self) -> tuple[str, str, str] | None:
        ids = (self.vocab.token_fim_pre, self.vocab.token_fim_suf, self.vocab.token_fim_mid)
        if any(t is None or t < 0 for t in ids):
            return None
        return tuple(self.vocab.token_text(int(t)) for t in ids)  # type: ignore[return-value, arg-type]

    def template_source(self) -> str | ChatTemplates:
        """The TEMPLATE layer (Go) when the model has one, else the GGUF's Jinja template."""
        return self.local.template if self.local.template is not None else self.chat


def inspect_model(local: LocalModel) -> ModelView:
    """Blocking: GGUF header, vocabulary (cached per blob) and capabilities.

    Capabilities are the same list /api/show reports, so a client that
    checks there is never surprised here. A corrupt blob is a 500 with the
    reason (llama.cpp's, for a load), logged as a warning without a traceback.
    """
    from pyllama._native import ModelLoadError

    path = local.model_path
    try:
        info = read_gguf(path) if path is not None and path.is_file() else None
        ref = ModelRef.from_local(local, info)  # no weights: 404
        chat = load_chat_templates(str(ref.path))
    except (GGUFError, ModelLoadError) as exc:
        message = str(exc) if isinstance(exc, ModelLoadError) else f"unable to load model: {path}: {exc}"
        log.warning("%s", message)
        raise RequestError(message, 500) from None
    return ModelView(local, ref, info, stored_model_capabilities(local, info), chat)


def check_capabilities(view: ModelView, requested_model: str, *, route: str, think: bool | str | None,
                       tools: bool = False, suffix: bool = False, images: bool = False) -> None:
    """Ollama's order and words: thinking, then completion, then tools/insert; images need vision."""
    caps = view.capabilities
    if THINKING not in caps and think_requested(think):
        raise RequestError(f"{json.dumps(requested_model)} does not support thinking")
    if COMPLETION not in caps:
        raise RequestError(f"{json.dumps(requested_model)} does not support {route}")
    missing = [cap for cap, wanted in ((TOOLS, tools), (INSERT, suffix)) if wanted and cap not in caps]
    if missing:
        raise RequestError(f"{view.full_name} does not support " + "\n".join(missing))
    if images and VISION not in caps:
        raise RequestError(f"{json.dumps(requested_model)} does not support vision: {NO_VISION}")


def render(view: ModelView, source: str | ChatTemplates | None, messages: Sequence[Mapping[str, Any]], *,
           tools: Sequence[Mapping[str, Any]] | None = None, think: bool | str | None = None, suffix: str = "",
           raw: bool = False, context_text: str = "", num_ctx: int = 0, truncate: bool = True,
           generic_tools: bool = False) -> RenderedPrompt:
    """Blocking: render the prompt; a template that fails is a 400 with the template's message."""
    try:
        return build_prompt(source, messages, tools=tools, think=think, default_think=THINKING in view.capabilities,
                            suffix=suffix, raw=raw, context_text=context_text, fim_tokens=view.fim_tokens(),
                            num_ctx=num_ctx, count_tokens=view.count_tokens, truncate=truncate,
                            generic_tools=generic_tools)
    except (TemplateError, ValueError) as exc:
        raise RequestError(str(exc)) from None
