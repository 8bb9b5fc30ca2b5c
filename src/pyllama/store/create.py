"""Building a model from a base model, uploaded blobs and text layers (/api/create).

``validate_create`` runs before any response byte is sent, so request
mistakes become a plain 400.  ``create_model`` then does the work, reporting
Ollama's status lines through ``emit``; it writes the manifest last, under
the store lock, once every layer blob is in place.  Every blob the new
manifest names is held (``Store.holding``) from the moment it is checked or
written, so a concurrent delete cannot prune it first.
"""

from __future__ import annotations

import json
import logging
import posixpath
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyllama.options import LEGACY_OPTIONS, OptionError, check_parameter
from pyllama.store.adapters import AdapterMismatch, check_adapter
from pyllama.store.draft import DraftMismatch, check_draft_file
from pyllama.store.errors import InvalidRequest, NotFound, StoreError
from pyllama.store.fsutil import sha256_file, temp_path
from pyllama.store.gguf_meta import GGUFError, GGUFInfo, human_number, is_gguf, read_gguf
from pyllama.store.layout import BlobHold, Store
from pyllama.store.manifest import (
    CONFIG_MEDIA_TYPE,
    DIGEST_RE,
    MEDIA_ADAPTER,
    MEDIA_DRAFT,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    WEIGHT_MEDIA_TYPES,
    Layer,
    Manifest,
    ModelConfig,
    encode_config,
    encode_manifest,
    normalize_digest,
)
from pyllama.store.model import load_model
from pyllama.store.modelfile import SEMVER_RE
from pyllama.store.names import ModelName, parse_name_or_400
from pyllama.store.quantize import QUANTIZABLE_FROM, canonical_quant_type, quantize_file

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
PullFn = Callable[[ModelName, Emit], None]

_PROJECTOR_ARCHES = frozenset({"clip", "mllama"})


@dataclass
class CreateSpec:
    """A validated /api/create request."""

    name: ModelName
    from_: str = ""
    files: dict[str, str] = field(default_factory=dict)
    adapters: dict[str, str] = field(default_factory=dict)
    draft_files: dict[str, str] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    license: list[str] | None = None
    parameters: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    quantize: str = ""
    renderer: str = ""
    parser: str = ""
    requires: str = ""


def _check_files(files: dict[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, digest in (files or {}).items():
        clean = posixpath.normpath(key.replace("\\", "/")) if key else ""
        if not key or key.startswith(("/", "\\")) or clean.startswith("..") or clean != key.replace("\\", "/"):
            raise InvalidRequest("file path must be relative")
        if not isinstance(digest, str) or not DIGEST_RE.match(digest):
            raise InvalidRequest("invalid digest format")
        out[key] = normalize_digest(digest)
    return out


def validate_parameters(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """Check /api/create ``parameters`` before storing them.

    Stricter than request ``options`` because this is persisted: unknown
    names and wrong types are a 400. Legacy names are dropped. Values are
    kept as given (after the type check; a lone ``stop`` string becomes a list).
    """
    out: dict[str, Any] = {}
    for name, value in (parameters or {}).items():
        if value is None:
            continue
        if name in LEGACY_OPTIONS:
            log.warning("parameter %s is deprecated and ignored", name)
            continue
        try:
            out[name] = check_parameter(name, value)
        except OptionError as exc:
            raise InvalidRequest(exc.message) from None
    return out


def validate_create(
    *,
    model: str,
    from_: str | None = None,
    files: dict[str, str] | None = None,
    adapters: dict[str, str] | None = None,
    draft_files: dict[str, str] | None = None,
    template: str | None = None,
    system: str | None = None,
    license: str | list[str] | None = None,
    parameters: dict[str, Any] | None = None,
    messages: list[dict[str, Any]] | None = None,
    quantize: str | None = None,
    renderer: str | None = None,
    parser: str | None = None,
    requires: str | None = None,
    check_template: Callable[[str], None] | None = None,
) -> CreateSpec:
    """Check everything that can be checked without doing the work; 400 on mistakes.

    ``check_template`` parses a TEMPLATE (ValueError when it does not parse);
    the server passes the template engine's parser, which lives above the store."""
    name = parse_name_or_400(model or "")
    from_ = (from_ or "").strip()
    if not from_ and not files:
        raise InvalidRequest("neither 'from' or 'files' was specified")
    spec = CreateSpec(name=name, from_=from_)
    if from_ and not DIGEST_RE.match(from_):
        parse_name_or_400(from_)
    spec.files = _check_files(files)
    spec.adapters = _check_files(adapters)
    if len(spec.adapters) > 1:
        raise InvalidRequest("only one adapter is currently supported")
    spec.draft_files = _check_files(draft_files)
    if template is not None:
        try:
            if check_template is not None:
                check_template(template)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        spec.template = template
    spec.system = system
    if license is not None:
        spec.license = [license] if isinstance(license, str) else list(license)
    if parameters is not None:
        spec.parameters = validate_parameters(parameters)
    if messages is not None:
        clean: list[dict[str, Any]] = []
        for message in messages:
            role = str(message.get("role", "")).lower()
            if role not in ("system", "user", "assistant", "tool"):
                raise InvalidRequest(f"invalid message role: {role!r}")
            clean.append({**{k: v for k, v in message.items() if v not in (None, "", [])}, "role": role, "content": message.get("content") or ""})
        spec.messages = clean
    if quantize:
        spec.quantize = canonical_quant_type(quantize)
    spec.renderer = renderer or ""
    spec.parser = parser or ""
    if requires and not SEMVER_RE.match(requires):
        raise InvalidRequest("requires must be a valid semver (e.g. 0.14.0)")
    spec.requires = (requires or "").removeprefix("v")
    return spec


def _status(emit: Emit, status: str, **extra: Any) -> None:
    emit({"status": status, **extra})


def _gguf_for(hold: BlobHold, digest: str, filename: str) -> GGUFInfo:
    path = hold.require(digest)
    if not is_gguf(path):
        raise InvalidRequest(f"{filename}: unsupported file format (only GGUF files are supported)")
    try:
        return read_gguf(path)
    except GGUFError as exc:
        raise InvalidRequest(f"{filename}: {exc}") from None


def _config_from_gguf(info: GGUFInfo, config: ModelConfig) -> ModelConfig:
    arch = info.architecture
    config.model_format = "gguf"
    config.model_family = arch
    config.model_families = [arch] if arch else []
    config.model_type = human_number(info.parameter_count)
    config.file_type = info.file_type
    ctx = info.arch_key("context_length")
    emb = info.arch_key("embedding_length")
    config.context_length = int(ctx) if isinstance(ctx, int) else 0
    config.embedding_length = int(emb) if isinstance(emb, int) else 0
    return config


class _Builder:
    """Accumulates layers and reports each as Ollama does."""

    def __init__(self, store: Store, hold: BlobHold, emit: Emit) -> None:
        self.store = store
        self.hold = hold
        self.emit = emit
        self.layers: list[Layer] = []
        self.data: dict[str, bytes] = {}

    def add_existing(self, layer: Layer) -> None:
        self.hold.require(layer.digest)
        _status(self.emit, f"using existing layer {layer.digest}")
        self.layers.append(layer)

    def add_data(self, media_type: str, data: bytes) -> None:
        digest, created = self.hold.write_blob(data)
        _status(self.emit, f"{'creating new' if created else 'using existing'} layer {digest}")
        self.layers.append(Layer(media_type, digest, len(data)))
        self.data[digest] = data

    def restore_missing(self) -> None:
        """Re-write small layers another process's delete pruned before our
        manifest landed (this process's deletes skip held blobs)."""
        for digest, data in self.data.items():
            if not self.store.has_blob(digest):
                self.store.write_blob(data)


def _quantize(store: Store, hold: BlobHold, layer: Layer, info: GGUFInfo, quant: str, emit: Emit,
              cancel: threading.Event | None) -> tuple[Layer, GGUFInfo]:
    source_type = info.file_type
    if source_type not in QUANTIZABLE_FROM:
        raise InvalidRequest("quantization is only supported for F16, BF16 and F32 models")
    total = layer.size
    status = f"quantizing {source_type} model to {quant}"
    _status(emit, status, digest="0000000000000000000", total=total, completed=0)
    target = temp_path(store.blobs_dir, "quantize-")
    try:
        quantize_file(store.blob_path(layer.digest), target, quant)
        if cancel is not None and cancel.is_set():
            raise StoreError("request canceled", 499)
        _status(emit, status, digest="0000000000000000000", total=total, completed=total)
        _status(emit, "verifying conversion")
        writer_digest = sha256_file(target)
        size = target.stat().st_size
        hold.add(writer_digest)
        store.link_blob(target, writer_digest)
    finally:
        target.unlink(missing_ok=True)
    new_layer = Layer(MEDIA_MODEL, writer_digest, size)
    try:
        new_info = read_gguf(store.blob_path(writer_digest))
    except GGUFError as exc:
        raise StoreError(f"quantization produced an unreadable file: {exc}") from None
    return new_layer, new_info


def _check_adapters(hold: BlobHold, weights: list[Layer], model_info: GGUFInfo, base_label: str,
                    names: dict[str, str]) -> None:
    """Every adapter the new model will carry must fit its weights (new or inherited)."""
    for layer in weights:
        if layer.media_type != MEDIA_ADAPTER:
            continue
        name = names.get(layer.digest, layer.digest)
        try:
            check_adapter(_gguf_for(hold, layer.digest, name), model_info)
        except AdapterMismatch as exc:
            raise InvalidRequest(f'adapter "{name}" does not fit the base model "{base_label}": {exc}') from None


def _check_draft(store: Store, weights: list[Layer], base_label: str, names: dict[str, str]) -> None:
    """A DRAFT (new or inherited) must share the weights' vocabulary."""
    model = next((layer for layer in weights if layer.media_type == MEDIA_MODEL), None)
    for layer in weights:
        if layer.media_type != MEDIA_DRAFT or model is None:
            continue
        name = names.get(layer.digest, layer.digest)
        try:
            check_draft_file(store.blob_path(layer.digest), store.blob_path(model.digest))
        except DraftMismatch as exc:
            raise InvalidRequest(f'draft model "{name}" does not share the vocabulary of the model '
                                 f'"{base_label}": {exc}') from None


def create_model(
    store: Store,
    spec: CreateSpec,
    emit: Emit,
    pull: PullFn | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """Create (or replace) ``spec.name``; emits status dicts ending with ``success``."""
    with store.holding() as hold:
        _create(store, hold, spec, emit, pull, cancel)


def _create(store: Store, hold: BlobHold, spec: CreateSpec, emit: Emit, pull: PullFn | None,
            cancel: threading.Event | None) -> None:
    config = ModelConfig()
    weights: list[Layer] = []
    template: str | None = None
    system = ""
    licenses: list[str] = []
    params: dict[str, Any] = {}
    messages: list[dict[str, Any]] = []
    model_info: GGUFInfo | None = None
    base_label = spec.from_
    files = dict(spec.files)

    if spec.from_ and DIGEST_RE.match(spec.from_):
        files = {"model.gguf": normalize_digest(spec.from_), **files}
    elif spec.from_:
        base_name = parse_name_or_400(spec.from_)
        if not store.exists(base_name):
            if pull is None:
                raise NotFound(f"model '{spec.from_}' not found")
            pull(base_name, emit)
        with store.locked():  # the base's weights are held before anyone can prune them
            base = load_model(store, base_name)
            for layer in base.stored.manifest.layers:
                if layer.media_type in WEIGHT_MEDIA_TYPES:
                    hold.require(layer.digest)
        source = base.name.display_shortest
        config = ModelConfig(**{f: getattr(base.config, f) for f in base.config.__struct_fields__})
        for layer in base.stored.manifest.layers:
            if layer.media_type in WEIGHT_MEDIA_TYPES:
                weights.append(Layer(layer.media_type, layer.digest, layer.size, from_=source, name=layer.name))
        template, system, licenses = base.template, base.system, list(base.licenses)
        params, messages = dict(base.parameters), list(base.messages)
        model_info = base.gguf()

    if files:
        _status(emit, "parsing GGUF")
        new_weights: list[Layer] = []
        for filename, digest in files.items():
            info = _gguf_for(hold, digest, filename)
            size = store.blob_path(digest).stat().st_size
            is_projector = info.architecture in _PROJECTOR_ARCHES or any(k.startswith("clip.") for k in info.kv)
            if is_projector:
                new_weights.append(Layer(MEDIA_PROJECTOR, digest, size))
            elif info.kv.get("general.type") == "adapter":
                new_weights.append(Layer(MEDIA_ADAPTER, digest, size))
            else:
                if any(layer.media_type == MEDIA_MODEL for layer in new_weights):
                    raise InvalidRequest("more than one model file given; only one GGUF model is supported")
                new_weights.append(Layer(MEDIA_MODEL, digest, size))
                model_info, base_label = info, filename
        has_model = any(layer.media_type == MEDIA_MODEL for layer in new_weights)
        if not has_model and not any(layer.media_type == MEDIA_MODEL for layer in weights):
            raise InvalidRequest("no model weights found in 'files'")
        # Each kind of weights given in files replaces that kind inherited from 'from'.
        replaced = {layer.media_type for layer in new_weights}
        weights = new_weights + [layer for layer in weights if layer.media_type not in replaced]
        if model_info is not None:
            config = _config_from_gguf(model_info, config)
            if any(layer.media_type == MEDIA_PROJECTOR for layer in weights):
                config.model_families = [*config.model_families, "clip"]

    if spec.adapters:
        _status(emit, "parsing GGUF")
        weights = [layer for layer in weights if layer.media_type != MEDIA_ADAPTER]
        for filename, digest in spec.adapters.items():
            _gguf_for(hold, digest, filename)
            weights.append(Layer(MEDIA_ADAPTER, digest, store.blob_path(digest).stat().st_size))
    if spec.draft_files:
        weights = [layer for layer in weights if layer.media_type != MEDIA_DRAFT]
        for filename, digest in spec.draft_files.items():
            _gguf_for(hold, digest, filename)
            weights.append(Layer(MEDIA_DRAFT, digest, store.blob_path(digest).stat().st_size))

    if model_info is not None:
        names = {digest: filename for filename, digest in (*files.items(), *spec.adapters.items())}
        _check_adapters(hold, weights, model_info, base_label, names)
        _check_draft(store, weights, base_label, {d: f for f, d in spec.draft_files.items()})

    if spec.quantize:
        index = next((i for i, layer in enumerate(weights) if layer.media_type == MEDIA_MODEL), None)
        if index is None or model_info is None:
            raise InvalidRequest("quantization needs GGUF model weights")
        weights[index], model_info = _quantize(store, hold, weights[index], model_info, spec.quantize, emit, cancel)
        config = _config_from_gguf(model_info, config)

    if spec.template is not None:
        template = spec.template
    if spec.system is not None:
        system = spec.system
    if spec.license is not None:
        licenses = spec.license
    if spec.parameters is not None:
        params = {**params, **spec.parameters}
    if spec.messages is not None:
        messages = spec.messages
    config.renderer = spec.renderer or config.renderer
    config.parser = spec.parser or config.parser
    config.requires = spec.requires or config.requires

    builder = _Builder(store, hold, emit)
    for layer in sorted(weights, key=lambda l: WEIGHT_MEDIA_TYPES.index(l.media_type)):
        builder.add_existing(layer)
    if template:
        builder.add_data(MEDIA_TEMPLATE, template.encode())
    if system:
        builder.add_data(MEDIA_SYSTEM, system.encode())
    for text in licenses:
        if text:
            builder.add_data(MEDIA_LICENSE, text.encode())
    if params:
        builder.add_data(MEDIA_PARAMS, json.dumps(params, separators=(",", ":"), ensure_ascii=False).encode())
    if messages:
        builder.add_data(MEDIA_MESSAGES, json.dumps(messages, separators=(",", ":"), ensure_ascii=False).encode())

    config_bytes = encode_config(config)
    config_digest, _ = hold.write_blob(config_bytes)
    builder.data[config_digest] = config_bytes
    manifest = Manifest(config=Layer(CONFIG_MEDIA_TYPE, config_digest, len(config_bytes)), layers=builder.layers)
    if cancel is not None and cancel.is_set():
        raise StoreError("request canceled", 499)
    _status(emit, "writing manifest")
    with store.locked():
        builder.restore_missing()
        orphaned = store.write_manifest(spec.name, encode_manifest(manifest), manifest)
        if orphaned:
            store.prune_digests(orphaned)
    _status(emit, "success")
