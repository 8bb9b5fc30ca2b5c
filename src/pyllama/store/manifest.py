"""Manifest and config-blob formats, as Ollama writes them on disk and on the wire.

A manifest is a Docker image manifest (schema 2) whose layers carry Ollama
media types.  Pulled manifests are kept byte for byte; created ones are
encoded compactly with a trailing newline.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"

_PREFIX = "application/vnd.ollama.image."
MEDIA_MODEL = _PREFIX + "model"
MEDIA_PROJECTOR = _PREFIX + "projector"
MEDIA_ADAPTER = _PREFIX + "adapter"
MEDIA_DRAFT = _PREFIX + "draft"
MEDIA_TEMPLATE = _PREFIX + "template"
MEDIA_PROMPT = _PREFIX + "prompt"  # legacy name of the template layer
MEDIA_SYSTEM = _PREFIX + "system"
MEDIA_LICENSE = _PREFIX + "license"
MEDIA_PARAMS = _PREFIX + "params"
MEDIA_MESSAGES = _PREFIX + "messages"

# Layers that hold weights (inherited by reference on create).
WEIGHT_MEDIA_TYPES = (MEDIA_MODEL, MEDIA_PROJECTOR, MEDIA_ADAPTER, MEDIA_DRAFT)

DIGEST_RE = re.compile(r"^sha256[:-]([0-9a-fA-F]{64})$")


class Layer(msgspec.Struct, omit_defaults=True, rename={"media_type": "mediaType"}):
    """One manifest entry (layer or config)."""

    media_type: str
    digest: str
    size: int
    from_: str = msgspec.field(default="", name="from")
    name: str = ""


class Manifest(msgspec.Struct, rename="camel"):
    """Docker schema-2 manifest with Ollama layers."""

    schema_version: int = 2
    media_type: str = MANIFEST_MEDIA_TYPE
    config: Layer | None = None
    layers: list[Layer] = msgspec.field(default_factory=list)

    def all_layers(self) -> list[Layer]:
        """Config first, then layers: everything that must exist as a blob."""
        return ([self.config] if self.config is not None else []) + list(self.layers)

    def digests(self) -> set[str]:
        return {normalize_digest(layer.digest) for layer in self.all_layers()}

    def total_size(self) -> int:
        return sum(layer.size for layer in self.all_layers())

    def first(self, media_type: str) -> Layer | None:
        for layer in self.layers:
            if layer.media_type == media_type:
                return layer
        return None

    def of_type(self, *media_types: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type in media_types]


_decoder = msgspec.json.Decoder(Manifest)


def decode_manifest(data: bytes) -> Manifest:
    """Parse manifest bytes; raise ValueError with a readable reason if corrupt."""
    try:
        manifest = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"invalid manifest: {exc}") from None
    for layer in manifest.all_layers():
        if not DIGEST_RE.match(layer.digest):
            raise ValueError(f"invalid manifest: bad digest {layer.digest!r}")
    return manifest


def encode_manifest(manifest: Manifest) -> bytes:
    """Compact JSON plus a newline, the form Ollama writes for created models."""
    return msgspec.json.encode(manifest) + b"\n"


def normalize_digest(digest: str) -> str:
    """``sha256:<lowercase hex>``; raise ValueError for anything else."""
    match = DIGEST_RE.match(digest)
    if match is None:
        raise ValueError("invalid digest format")
    return "sha256:" + match.group(1).lower()


class ModelConfig(msgspec.Struct, omit_defaults=True):
    """The config blob: format, family, size and quantization of the weights."""

    model_format: str = ""
    model_family: str = ""
    model_families: list[str] = msgspec.field(default_factory=list)
    model_type: str = ""
    file_type: str = ""
    renderer: str = ""
    parser: str = ""
    requires: str = ""
    capabilities: list[str] = msgspec.field(default_factory=list)
    context_length: int = 0
    embedding_length: int = 0
    base_name: str = ""
    remote_host: str = ""
    remote_model: str = ""
    draft: dict[str, Any] = msgspec.field(default_factory=dict)


def decode_config(data: bytes) -> ModelConfig:
    """Parse a config blob, ignoring keys we do not use (legacy ``rootfs``...)."""
    try:
        return msgspec.json.decode(data, type=ModelConfig)
    except msgspec.DecodeError:
        return ModelConfig()


def encode_config(config: ModelConfig) -> bytes:
    """Config blob bytes; ``architecture``/``os`` are always present, as in Ollama."""
    raw: dict[str, Any] = msgspec.to_builtins(config)
    raw["architecture"] = "amd64"
    raw["os"] = "linux"
    return msgspec.json.encode(raw)
