"""A stored model read back into the pieces the server needs.

Reads the manifest's layers (weights, template, system, params, ...) into one
object: /api/show renders it and the scheduler loads from it. What the model
can do (its capabilities) is judged above the store, by the templates package.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyllama.store.errors import NotFound, StoreError
from pyllama.store.gguf_meta import GGUFError, GGUFInfo, read_gguf
from pyllama.store.layout import Store, StoredModel
from pyllama.store.manifest import (
    MEDIA_ADAPTER,
    MEDIA_DRAFT,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_PROMPT,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    ModelConfig,
    decode_config,
)
from pyllama.store.names import ModelName, parse_name_or_400

log = logging.getLogger(__name__)


@dataclass
class LocalModel:
    """Everything a manifest says about one model, with blob paths resolved."""

    stored: StoredModel
    config: ModelConfig
    model_path: Path | None = None
    parent_model: str = ""
    projector_paths: list[Path] = field(default_factory=list)
    adapter_paths: list[Path] = field(default_factory=list)
    draft_path: Path | None = None
    template: str | None = None  # None: no TEMPLATE layer
    system: str = ""
    licenses: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> ModelName:
        return self.stored.name

    def gguf(self, materialise_arrays: bool = False) -> GGUFInfo | None:
        """Header of the model weights, or None when absent or unreadable."""
        if self.model_path is None:
            return None
        try:
            return read_gguf(self.model_path, materialise_arrays)
        except GGUFError as exc:
            log.warning("cannot read GGUF %s: %s", self.model_path, exc)
            return None

    def effective_template(self, info: GGUFInfo | None = None) -> str:
        """The template prompts are rendered with: TEMPLATE layer, else the GGUF one."""
        if self.template is not None:
            return self.template
        info = info if info is not None else self.gguf()
        chat = info.kv.get("tokenizer.chat_template") if info is not None else None
        return chat if isinstance(chat, str) else ""


def _text(store: Store, digest: str) -> str:
    return store.read_blob(digest).decode("utf-8", errors="replace")


def load_model(store: Store, name: ModelName) -> LocalModel:
    """Read a model's manifest and small layers; raise NotFound if missing."""
    stored = store.get(name)
    manifest = stored.manifest
    config = ModelConfig()
    try:
        if manifest.config is not None:
            config = decode_config(store.read_blob(manifest.config.digest))
        model = LocalModel(stored, config)
        for layer in manifest.layers:
            media = layer.media_type
            if media == MEDIA_MODEL:
                if model.model_path is None:
                    model.model_path = store.blob_path(layer.digest)
                    model.parent_model = layer.from_
                else:
                    model.projector_paths.append(store.blob_path(layer.digest))
            elif media == MEDIA_PROJECTOR:
                model.projector_paths.append(store.blob_path(layer.digest))
            elif media == MEDIA_ADAPTER:
                model.adapter_paths.append(store.blob_path(layer.digest))
            elif media == MEDIA_DRAFT:
                model.draft_path = store.blob_path(layer.digest)
            elif media in (MEDIA_TEMPLATE, MEDIA_PROMPT):
                model.template = _text(store, layer.digest)
            elif media == MEDIA_SYSTEM:
                model.system = _text(store, layer.digest)
            elif media == MEDIA_LICENSE:
                model.licenses.append(_text(store, layer.digest))
            elif media == MEDIA_PARAMS:
                params = json.loads(store.read_blob(layer.digest) or b"{}")
                if isinstance(params, dict):
                    model.parameters = params
            elif media == MEDIA_MESSAGES:
                messages = json.loads(store.read_blob(layer.digest) or b"[]")
                if isinstance(messages, list):
                    model.messages = [m for m in messages if isinstance(m, dict)]
    except FileNotFoundError as exc:
        raise StoreError(f"model '{name.display_shortest}' is missing a blob: {Path(exc.filename or '').name}") from None
    except json.JSONDecodeError as exc:
        raise StoreError(f"model '{name.display_shortest}' has a corrupt layer: {exc}") from None
    return model


def find_model(store: Store, raw: str) -> LocalModel:
    """Look up a model named in a request, with Ollama's errors.

    Invalid name: 400 ``invalid model name``; no such model: 404
    ``model '<raw>' not found`` (the name as the client wrote it).
    """
    name = parse_name_or_400(raw)
    if not store.exists(name):
        raise NotFound(f"model '{raw}' not found")
    return load_model(store, store.resolve(name))
