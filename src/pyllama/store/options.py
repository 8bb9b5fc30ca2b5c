"""The Ollama ``options`` table: names, types and defaults.

Shared by the Modelfile parser (PARAMETER lines), /api/create
(``parameters``) and the inference API (request ``options``), so every
entry point accepts and rejects the same things with the same words.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pyllama.store.errors import InvalidRequest, StoreError

log = logging.getLogger(__name__)

OptionType = Literal["int", "float", "bool", "string", "list", "objects"]

# How Ollama names each type in ``option "<k>" must be of type ...``.
TYPE_WORDS: dict[OptionType, str] = {
    "int": "integer",
    "float": "float32",
    "bool": "boolean",
    "string": "string",
    "list": "array",
    "objects": "array",
}


@dataclass(frozen=True)
class OptionSpec:
    name: str
    type: OptionType
    default: Any
    runner: bool = False  # a different value forces a model reload
    request_only: bool = False  # not a Modelfile PARAMETER / stored parameter


OPTIONS: dict[str, OptionSpec] = {
    spec.name: spec
    for spec in (
        # Runner options: fixed for a loaded instance.
        OptionSpec("num_ctx", "int", 4096, runner=True),
        OptionSpec("num_batch", "int", 512, runner=True),
        OptionSpec("num_gpu", "int", -1, runner=True),
        OptionSpec("main_gpu", "int", None, runner=True),
        OptionSpec("use_mmap", "bool", None, runner=True),
        OptionSpec("num_thread", "int", 0, runner=True),
        OptionSpec("draft_num_predict", "int", 4, runner=True),
        # Per-request sampling and generation options.
        OptionSpec("num_keep", "int", 4),
        OptionSpec("seed", "int", -1),
        OptionSpec("num_predict", "int", -1),
        OptionSpec("top_k", "int", 40),
        OptionSpec("top_p", "float", 0.9),
        OptionSpec("min_p", "float", 0.0),
        OptionSpec("typical_p", "float", 1.0),
        OptionSpec("repeat_last_n", "int", 64),
        OptionSpec("temperature", "float", 0.8),
        OptionSpec("repeat_penalty", "float", 1.0),
        OptionSpec("presence_penalty", "float", 0.0),
        OptionSpec("frequency_penalty", "float", 0.0),
        OptionSpec("stop", "list", ()),
        # pyllama's: per-request LoRA scales, [{"id": 0, "scale": 0.5}] (llama-server's shape).
        OptionSpec("lora", "objects", None, request_only=True),
    )
}

RUNNER_OPTIONS = frozenset(name for name, spec in OPTIONS.items() if spec.runner)

# Accepted for compatibility but without effect (Ollama dropped them).
LEGACY_OPTIONS = frozenset(
    {
        "numa",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "embedding_only",
        "penalize_newline",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
        "tfs_z",
    }
)

# PARAMETER names the Modelfile parser warns about and drops.
DEPRECATED_PARAMETERS = frozenset(
    {
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
    }
)


class OptionTypeError(StoreError):
    """A JSON option of the wrong type; Ollama answers these with a 500."""

    status_code = 500


def option_type_message(name: str, spec: OptionSpec) -> str:
    return f'option "{name}" must be of type {TYPE_WORDS[spec.type]}'


def coerce_json_option(name: str, value: Any) -> Any:
    """Check one JSON ``options`` value against the table and normalise it.

    Ints accept any JSON number (truncated), floats accept ints, lists must
    hold strings.  Raises OptionTypeError (500, as Ollama) on a mismatch.
    """
    spec = OPTIONS[name]
    if spec.type == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise OptionTypeError(option_type_message(name, spec))
        return int(value)
    if spec.type == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionTypeError(option_type_message(name, spec))
        return float(value)
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise OptionTypeError(option_type_message(name, spec))
        return value
    if spec.type == "string":
        if not isinstance(value, str):
            raise OptionTypeError(option_type_message(name, spec))
        return value
    item_type = dict if spec.type == "objects" else str
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, item_type) for v in value):
        raise OptionTypeError(option_type_message(name, spec))
    return list(value)


def validate_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Normalise a request's ``options``: unknown and legacy keys are dropped
    (logged), ``null`` values skipped, types checked."""
    out: dict[str, Any] = {}
    for name, value in (options or {}).items():
        if value is None:
            continue
        if name not in OPTIONS:
            if name not in LEGACY_OPTIONS:
                log.warning("invalid option provided: %s", name)
            continue
        out[name] = coerce_json_option(name, value)
    return out


def validate_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check /api/create ``parameters`` before storing them.

    Stricter than ``options`` because this is persisted: unknown names are a
    400 (``unknown parameter 'x'``) and type errors are 400 too.  Legacy
    names are dropped.  Values are kept as given (after the type check).
    """
    out: dict[str, Any] = {}
    for name, value in (parameters or {}).items():
        if value is None:
            continue
        if name in LEGACY_OPTIONS:
            log.warning("parameter %s is deprecated and ignored", name)
            continue
        if name not in OPTIONS:
            raise InvalidRequest(f"unknown parameter '{name}'")
        if OPTIONS[name].request_only:
            raise InvalidRequest(f"parameter '{name}' can only be set in a request's options")
        if OPTIONS[name].type == "list" and isinstance(value, str):
            value = [value]
        try:
            coerce_json_option(name, value)
        except OptionTypeError as exc:
            raise InvalidRequest(exc.message) from None
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def parse_parameter_text(name: str, text: str) -> Any:
    """Convert a Modelfile ``PARAMETER name value`` string to its typed value.

    Raises ValueError with Ollama's wording (``invalid float value [x]``).
    """
    spec = OPTIONS.get(name)
    if spec is None:
        raise ValueError(f"unknown parameter '{name}'")
    if spec.request_only:
        raise ValueError(f"parameter '{name}' can only be set in a request's options")
    if spec.type == "int":
        try:
            return int(text, 10)
        except ValueError:
            raise ValueError(f"invalid int value [{text}]") from None
    if spec.type == "float":
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"invalid float value [{text}]") from None
        if text.strip().lower() in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity"):
            raise ValueError(f"invalid float value [{text}]")
        return number
    if spec.type == "bool":
        lowered = text.lower()
        if lowered in ("1", "t", "true"):
            return True
        if lowered in ("0", "f", "false"):
            return False
        raise ValueError(f"invalid bool value [{text}]")
    if spec.type == "list":
        return [text]
    return text


def default_options() -> dict[str, Any]:
    """Defaults for every option that has one (``None`` means unset/auto)."""
    return {
        name: (list(spec.default) if isinstance(spec.default, tuple) else spec.default)
        for name, spec in OPTIONS.items()
        if spec.default is not None
    }
