"""Wire types of Ollama's model-management routes (create, copy, show, list), as msgspec Structs.

Requests decode leniently (unknown fields ignored, as Ollama does); a wrong
field type is a 400 with msgspec's message.  Field names and aliases match
Ollama's JSON exactly (``model``/``name``, ``from``, ``quantize``/``quantization``).
"""

from __future__ import annotations

from typing import Any

import msgspec


class CreateRequest(msgspec.Struct, kw_only=True):
    model: str = ""
    name: str = ""  # legacy alias of model
    from_: str | None = msgspec.field(default=None, name="from")
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    draft_files: dict[str, str] | None = None
    template: str | None = None
    license: str | list[str] | None = None
    system: str | None = None
    parameters: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    quantize: str | None = None
    quantization: str | None = None  # legacy alias of quantize
    renderer: str | None = None
    parser: str | None = None
    requires: str | None = None
    stream: bool | None = None


class ModelRequest(msgspec.Struct, kw_only=True):
    """Body naming one model: /api/show, /api/delete, /api/pull, /api/push."""

    model: str = ""
    name: str = ""
    verbose: bool = False
    insecure: bool = False
    stream: bool | None = None
    system: str | None = None
    options: dict[str, Any] | None = None

    @property
    def target(self) -> str:
        return (self.model or self.name).strip()


class CopyRequest(msgspec.Struct, kw_only=True):
    source: str = ""
    destination: str = ""


class ModelDetails(msgspec.Struct):
    """Always serialised in full (Go has no omitempty here; ``families`` may be null)."""

    parent_model: str = ""
    format: str = ""
    family: str = ""
    families: list[str] | None = None
    parameter_size: str = ""
    quantization_level: str = ""


class ListModel(msgspec.Struct, omit_defaults=True):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails
    context_length: int = 0
    embedding_length: int = 0
    capabilities: list[str] | None = None


class ListResponse(msgspec.Struct):
    models: list[ListModel]
