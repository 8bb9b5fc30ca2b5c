"""Ollama ``options`` mappings -> ``SamplingOptions``, and value checks.

The server validates types once at the HTTP boundary; the engine checks
values again so in-process callers get the same clear errors.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import msgspec

from pyllama.engine.errors import InvalidRequestError
from pyllama.engine.types import SamplingOptions

log = logging.getLogger(__name__)

_INT_FIELDS = frozenset({"num_predict", "top_k", "repeat_last_n", "mirostat", "seed", "num_keep"})
_FLOAT_FIELDS = frozenset({
    "temperature", "top_p", "min_p", "typical_p", "repeat_penalty", "presence_penalty",
    "frequency_penalty", "mirostat_tau", "mirostat_eta",
})
_TYPE_WORDS = {"int": "integer", "float": "float32", "list": "array", "string": "string", "map": "object"}
MAX_TOP_LOGPROBS = 20
TRIGGER_KINDS = ("word", "pattern", "pattern_full", "token")  # llama.cpp's common_grammar_trigger_type


def _type_error(key: str, kind: str) -> InvalidRequestError:
    return InvalidRequestError(f'option "{key}" must be of type {_TYPE_WORDS[kind]}')


def _number(key: str, value: Any, kind: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(key, kind)
    if kind == "int":
        if isinstance(value, float) and not math.isfinite(value):
            raise _type_error(key, kind)
        return int(value)
    return float(value)


def _stop_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
        return list(value)
    raise _type_error("stop", "list")


def _logit_bias(value: Any) -> dict[int, float]:
    if not isinstance(value, Mapping):
        raise _type_error("logit_bias", "map")
    out: dict[int, float] = {}
    for tok, bias in value.items():
        try:
            out[int(tok)] = float(bias)
        except (TypeError, ValueError):
            raise InvalidRequestError(f"logit_bias entries must map token ids to numbers, got {tok!r}: {bias!r}")
    return out


def _lora(value: Any) -> dict[int, float]:
    """llama-server's request shape: ``[{"id": 0, "scale": 0.5}, ...]``."""
    if not isinstance(value, (list, tuple)):
        raise _type_error("lora", "list")
    out: dict[int, float] = {}
    for item in value:
        if not isinstance(item, Mapping) or set(item) != {"id", "scale"}:
            raise InvalidRequestError('each "lora" entry must be an object {"id": integer, "scale": number}')
        out[int(_number("lora id", item["id"], "int"))] = float(_number("lora scale", item["scale"], "float"))
    return out


def lora_scales(requested: Mapping[int, float], n_adapters: int) -> tuple[float, ...]:
    """Every adapter's scale for a request: 1.0 unless the request names it."""
    scales = [1.0] * n_adapters
    for index, scale in requested.items():
        if not 0 <= index < n_adapters:
            raise InvalidRequestError(f"invalid LoRA adapter id {index}: the model has {n_adapters} adapter(s)")
        scales[index] = scale
    return tuple(scales)


def options_from_mapping(options: Mapping[str, Any] | None, base: SamplingOptions | None = None) -> SamplingOptions:
    """Overlay an Ollama ``options`` object on ``base`` (Ollama defaults when
    omitted). Unknown keys are ignored, as Ollama does (runner options such
    as num_ctx belong to the scheduler); ``None`` values are skipped."""
    values: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if value is None:
            continue
        if key in _INT_FIELDS:
            values[key] = _number(key, value, "int")
        elif key in _FLOAT_FIELDS:
            values[key] = _number(key, value, "float")
        elif key == "stop":
            values[key] = _stop_list(value)
        elif key == "grammar":
            if not isinstance(value, str):
                raise _type_error(key, "string")
            values[key] = value
        elif key == "logit_bias":
            values[key] = _logit_bias(value)
        elif key == "lora":
            values[key] = _lora(value)
        else:
            log.debug("ignoring option %r", key)
    opts = msgspec.structs.replace(base or SamplingOptions(), **values)
    validate_options(opts)
    return opts


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidRequestError(message)


def validate_options(opts: SamplingOptions, n_vocab: int | None = None) -> None:
    """Reject values that have no meaning (rather than silently clamping)."""
    _check(opts.num_predict >= -2, f"num_predict must be -2 (fill context), -1 (no limit) or >= 0, got {opts.num_predict}")
    _check(math.isfinite(opts.temperature) and opts.temperature >= 0,
           f"temperature must be >= 0, got {opts.temperature}")
    _check(opts.top_k >= 0, f"top_k must be >= 0 (0 disables it), got {opts.top_k}")
    for name in ("top_p", "min_p", "typical_p"):
        value = getattr(opts, name)
        _check(0.0 <= value <= 1.0, f"{name} must be between 0 and 1, got {value}")
    _check(opts.repeat_last_n >= -1, f"repeat_last_n must be -1 (whole context), 0 (off) or positive, got {opts.repeat_last_n}")
    _check(opts.repeat_penalty > 0 and math.isfinite(opts.repeat_penalty),
           f"repeat_penalty must be > 0, got {opts.repeat_penalty}")
    for name in ("presence_penalty", "frequency_penalty"):
        _check(math.isfinite(getattr(opts, name)), f"{name} must be a finite number")
    _check(opts.mirostat in (0, 1, 2), f"mirostat must be 0 (off), 1 or 2, got {opts.mirostat}")
    _check(opts.mirostat_tau > 0 and opts.mirostat_eta > 0, "mirostat_tau and mirostat_eta must be > 0")
    _check(all(opts.stop), "stop strings must not be empty")
    kinds = {t.kind for t in opts.grammar_triggers} - set(TRIGGER_KINDS)
    _check(not kinds, f"unknown grammar trigger kind(s): {', '.join(sorted(kinds))} (expected {', '.join(TRIGGER_KINDS)})")
    # as llama-server: a lazy grammar without triggers would never apply
    _check(not (opts.grammar and opts.grammar_lazy) or bool(opts.grammar_triggers),
           "a lazy grammar needs at least one trigger")
    _check(all(math.isfinite(s) for s in opts.lora.values()), "LoRA scales must be finite numbers")
    if n_vocab is not None:
        for tok, bias in opts.logit_bias.items():
            _check(0 <= tok < n_vocab, f"logit_bias token {tok} is not in the vocabulary (0..{n_vocab - 1})")
            _check(not math.isnan(bias), f"logit_bias for token {tok} is NaN")


def validate_top_logprobs(top_logprobs: int) -> None:
    """Ollama's bound on top_logprobs."""
    _check(0 <= top_logprobs <= MAX_TOP_LOGPROBS, f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}")
