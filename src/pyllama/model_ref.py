"""What the scheduler loads and reports: a model reference, its runner options, a loaded entry.

``RunnerOptions`` has one field per "load"/"context" entry of
``pyllama.options.OPTIONS``: two requests share a runner when these are equal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec

from pyllama.engine import InvalidRequestError
from pyllama.options import OPTIONS, OptionError, check_values, coerce, resolve_num_ctx, struct_fields
from pyllama.store.adapters import adapter_entries, blob_digest
from pyllama.store.errors import NotFound
from pyllama.store.gguf_meta import GGUFError, GGUFInfo, read_gguf
from pyllama.store.layout import Store
from pyllama.store.model import LocalModel, find_model
from pyllama.store.show import details as model_details
from pyllama.store.show import format_time


def _train_context(info: GGUFInfo | None) -> int:
    train = info.arch_key("context_length") if info is not None else None
    return train if isinstance(train, int) and train > 0 else 0


@dataclass(frozen=True)
class ModelRef:
    """A model as the store resolved it: what /api/ps shows and what to load
    (the weights, every LoRA adapter, applied in this order, and the draft
    model for speculative decoding). ``n_ctx_train`` (0: unknown) caps the
    context a runner gets."""

    name: str
    path: Path
    digest: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    model: str = ""
    n_ctx_train: int = 0
    adapters: tuple[Path, ...] = ()
    projector: Path | None = None  # the mmproj GGUF loaded with the weights (vision/audio input)
    draft: Path | None = None

    @property
    def display_model(self) -> str:
        return self.model or self.name

    @classmethod
    def from_local(cls, local: LocalModel, info: GGUFInfo | None = None) -> ModelRef:
        """From a store lookup; a manifest without weights is a 404 as in Ollama."""
        name = local.name.display_shortest
        if local.model_path is None or not local.model_path.is_file():
            raise NotFound(f'model "{name}" not found, try pulling it first')
        info = info if info is not None else local.gguf()
        return cls(name=name, path=local.model_path, digest=local.stored.manifest_digest,
                   details=model_details(local, info), model=name, n_ctx_train=_train_context(info),
                   adapters=tuple(local.adapter_paths), draft=local.draft_path,
                   projector=local.projector_paths[0] if local.projector_paths else None)

    @classmethod
    def from_path(cls, path: str | Path, name: str | None = None, digest: str = "",
                  adapters: tuple[Path, ...] = (), draft: Path | None = None) -> ModelRef:
        """A GGUF file outside any store (tests, benchmarks, embedding Python code)."""
        path = Path(path)
        details: dict[str, Any] = {"format": "gguf"}
        info = None
        with contextlib.suppress(GGUFError):
            info = read_gguf(path)
            details.update(family=info.architecture, families=[info.architecture],
                           quantization_level=info.file_type)
        return cls(name=name or path.stem, path=path, digest=digest, details=details, model=name or path.stem,
                   n_ctx_train=_train_context(info), adapters=adapters, draft=draft)

    @property
    def weights(self) -> tuple[str, tuple[str, ...]]:
        """What a runner loads: two refs with equal weights (and ``projector`` and ``draft``) can share one."""
        return str(self.path), tuple(str(a) for a in self.adapters)


def resolve_model(store: Store, raw: str) -> ModelRef:
    """Name in a request -> ModelRef, with the store's 400/404 errors."""
    return ModelRef.from_local(find_model(store, raw))


def _from_mapping(cls: type[Any], options: Mapping[str, Any] | None) -> Any:
    """Pick the runner options out of an Ollama ``options`` object (others are
    the engine's); wrong types and values raise InvalidRequestError with Ollama's wording."""
    values: dict[str, Any] = {}
    try:
        for key, value in (options or {}).items():
            option = OPTIONS.get(key)
            if value is not None and option is not None and option.runner:
                values[key] = coerce(key, value)
        check_values(values, ("load", "context"))
    except OptionError as exc:
        raise InvalidRequestError(exc.message) from None
    return cls(**values)


def _resolved(self: Any, ref: ModelRef, default_num_ctx: int, default_threads: int) -> Any:
    """num_ctx and num_thread filled in (never 0): the one place num_ctx is decided."""
    return msgspec.structs.replace(self, num_ctx=resolve_num_ctx(self.num_ctx, default_num_ctx, ref.n_ctx_train),
                                   num_thread=self.num_thread or default_threads)


# The request options that shape a runner; a change forces a reload. num_ctx 0 and
# num_thread 0 mean "the scheduler's default" until ``resolved``.
RunnerOptions = msgspec.defstruct("RunnerOptions", struct_fields("load", "context"), module=__name__, frozen=True,
                                  namespace={"from_mapping": classmethod(_from_mapping), "resolved": _resolved})


@dataclass(frozen=True)
class LoadedModel:
    """One /api/ps entry. ``expires_at`` is a Unix time."""

    name: str
    model: str
    size: int
    size_vram: int
    digest: str
    details: Mapping[str, Any]
    expires_at: float
    context_length: int
    pid: int
    adapters: tuple[Path, ...] = ()
    devices: tuple[Any, ...] = ()  # runner.protocol.DeviceUse, when the model is split over RPC devices
    draft: Path | None = None
    num_parallel: int = 1

    def as_dict(self) -> dict[str, Any]:
        """The JSON object /api/ps returns for this model (``num_parallel``, the
        runner's slots, is pyllama's; so are ``adapters``, ``devices`` and ``draft``,
        present when the model has them)."""
        out = {"name": self.name, "model": self.model, "size": self.size, "digest": self.digest,
               "details": dict(self.details), "expires_at": format_time(self.expires_at),
               "size_vram": self.size_vram, "context_length": self.context_length,
               "num_parallel": self.num_parallel}
        if self.adapters:
            out["adapters"] = adapter_entries(self.adapters)
        if self.devices:
            out["devices"] = [{"name": d.name, "description": d.description, "size": d.size} for d in self.devices]
        if self.draft is not None:
            out["draft"] = {"digest": blob_digest(self.draft)}
        return out


def one_per_model(entries: Iterable[LoadedModel]) -> list[LoadedModel]:
    """/api/ps entries merged by name, latest expiry first: a model's generation and embedding
    runners (when both are loaded) are one entry, sizes added, the first one's pid and context."""
    merged: dict[str, LoadedModel] = {}
    for entry in entries:
        first = merged.get(entry.name)
        merged[entry.name] = entry if first is None else replace(
            first, size=first.size + entry.size, size_vram=first.size_vram + entry.size_vram,
            devices=first.devices + entry.devices,
            expires_at=max(first.expires_at, entry.expires_at))
    return sorted(merged.values(), key=lambda m: m.expires_at, reverse=True)
