"""The one table of generation and load options (Ollama's ``options``).

Every entry point reads this table and nothing else lists option names:
request ``options`` (``validate_options``), Modelfile ``PARAMETER`` lines
(``parse_parameter_text``), /api/create ``parameters`` (``check_parameter``),
the engine's ``SamplingOptions`` (``struct_fields("sampling")``) and the
scheduler's ``RunnerOptions`` (``struct_fields("load", "context")``).
Adding an option is one ``Option(...)`` line here; the engine or the
scheduler then reads the field of that name.

This module sits at the bottom of the package: it imports nothing from it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

OptionType = Literal["int", "float", "bool", "string", "list", "map", "objects"]
# sampling: per request, a SamplingOptions field; load: fixed for a loaded runner (a different
# value reloads it); context: the runner's context size, which also bounds prompt fitting.
Applies = Literal["sampling", "load", "context"]

# How Ollama names each type in ``option "<k>" must be of type ...``.
TYPE_WORDS: dict[OptionType, str] = {
    "int": "integer", "float": "float32", "bool": "boolean", "string": "string", "list": "array", "map": "object",
    "objects": "array",
}
_PY_TYPES: dict[OptionType, Any] = {
    "int": int, "float": float, "bool": bool, "string": str, "list": list[str], "map": dict[int, float],
    "objects": list[dict[str, Any]],
}
DEFAULT_NUM_CTX = 4096
MIN_NUM_CTX = 4


class OptionError(ValueError):
    """An option value with no meaning (a 400 wherever it arrives)."""

    status_code = 400

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class OptionTypeError(OptionError):
    """A JSON option of the wrong type; Ollama answers these with a 500."""

    status_code = 500


@dataclass(frozen=True)
class Option:
    """One option: its JSON type, default, and where it applies.

    ``check`` says whether a value is meaningful; ``rule`` is the error
    (``{name}``/``{value}`` filled in). ``public=False`` marks engine-only
    fields (``grammar``, ``logit_bias``): in-process callers set them, while
    request options and PARAMETER lines do not know them. A structured value
    (e.g. a list of objects) brings its own ``convert`` (JSON value -> typed
    value, OptionTypeError on a mismatch) and ``py_type`` (the struct field's type);
    its output must convert to itself, as merged options are converted again
    on their way into ``SamplingOptions``. ``request_only`` marks an option a
    request may set but a Modelfile PARAMETER or /api/create ``parameters`` may not.
    """

    name: str
    type: OptionType
    default: Any
    applies: Applies = "sampling"
    check: Callable[[Any], bool] | None = None
    rule: str = ""
    public: bool = True
    convert: Callable[[Any], Any] | None = None
    py_type: Any = None
    request_only: bool = False

    @property
    def runner(self) -> bool:
        """A different value needs another runner (the scheduler reloads the model)."""
        return self.applies != "sampling"

    def type_error(self) -> OptionTypeError:
        return OptionTypeError(f'option "{self.name}" must be of type {TYPE_WORDS[self.type]}')

    def value_error(self, value: Any) -> OptionError | None:
        if self.check is None or self.check(value):
            return None
        return OptionError(self.rule.format(name=self.name, value=value))


def _finite(v: float) -> bool:
    return math.isfinite(v)


def _unit(v: float) -> bool:
    return 0.0 <= v <= 1.0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _lora(value: Any) -> list[dict[str, Any]]:
    """llama-server's shape, ``[{"id": 0, "scale": 0.5}, ...]``, with ints and floats."""
    if not isinstance(value, (list, tuple)):
        raise OptionTypeError('option "lora" must be of type array')
    out = []
    for item in value:
        if not (isinstance(item, Mapping) and set(item) == {"id", "scale"} and _is_number(item["scale"])
                and _is_number(item["id"]) and math.isfinite(item["id"]) and item["id"] == int(item["id"])):
            raise OptionError('each "lora" entry must be an object {"id": integer, "scale": number}')
        out.append({"id": int(item["id"]), "scale": float(item["scale"])})
    return out


# auto: the model's DRAFT when it has one, else none; draft: the DRAFT (an error without one);
# ngram: prompt lookup in the request's own tokens; off: none.
SPECULATIVE_MODES = ("auto", "draft", "ngram", "off")
MAX_DRAFT = 64  # tokens drafted per step at most (a batch must hold every slot's draft)
_UNIT = "{name} must be between 0 and 1, got {value}"
_MIROSTAT_RATE = "mirostat_tau and mirostat_eta must be > 0"

OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        # Fixed for a loaded runner. num_ctx 0: PYLLAMA_CONTEXT_LENGTH, else 4096.
        Option("num_ctx", "int", 0, "context"),
        Option("num_batch", "int", 512, "load", lambda v: v > 0, "num_batch must be positive"),
        Option("num_gpu", "int", -1, "load"),
        Option("main_gpu", "int", None, "load", lambda v: v >= 0, "main_gpu must be >= 0"),
        Option("use_mmap", "bool", None, "load"),
        Option("num_thread", "int", 0, "load", lambda v: v >= 0, "num_thread must be >= 0 (0 = automatic)"),
        # Per request.
        Option("num_keep", "int", 4),
        Option("seed", "int", -1),
        Option("num_predict", "int", -1, check=lambda v: v >= -2,
               rule="num_predict must be -2 (fill context), -1 (no limit) or >= 0, got {value}"),
        Option("top_k", "int", 40, check=lambda v: v >= 0, rule="top_k must be >= 0 (0 disables it), got {value}"),
        Option("top_p", "float", 0.9, check=_unit, rule=_UNIT),
        Option("min_p", "float", 0.0, check=_unit, rule=_UNIT),
        Option("typical_p", "float", 1.0, check=_unit, rule=_UNIT),
        Option("repeat_last_n", "int", 64, check=lambda v: v >= -1,
               rule="repeat_last_n must be -1 (whole context), 0 (off) or positive, got {value}"),
        Option("temperature", "float", 0.8, check=lambda v: math.isfinite(v) and v >= 0,
               rule="temperature must be >= 0, got {value}"),
        Option("repeat_penalty", "float", 1.0, check=lambda v: math.isfinite(v) and v > 0,
               rule="repeat_penalty must be > 0, got {value}"),
        Option("presence_penalty", "float", 0.0, check=_finite, rule="{name} must be a finite number"),
        Option("frequency_penalty", "float", 0.0, check=_finite, rule="{name} must be a finite number"),
        # Honoured, unlike current Ollama (docs/api.md): llama.cpp's mirostat samplers.
        Option("mirostat", "int", 0, check=lambda v: v in (0, 1, 2), rule="mirostat must be 0 (off), 1 or 2, got {value}"),
        Option("mirostat_tau", "float", 5.0, check=lambda v: v > 0, rule=_MIROSTAT_RATE),
        Option("mirostat_eta", "float", 0.1, check=lambda v: v > 0, rule=_MIROSTAT_RATE),
        Option("stop", "list", (), check=all, rule="stop strings must not be empty"),
        # pyllama's: the scales of the model's LoRA adapters for this request (unnamed ones keep 1.0).
        Option("lora", "objects", (), check=lambda v: all(math.isfinite(e["scale"]) for e in v),
               rule="LoRA scales must be finite numbers", convert=_lora, request_only=True),
        # Speculative decoding (docs/engine.md): which drafter, and llama-server's
        # speculative.n_max / n_min / p_min. Per request, so one runner serves both.
        Option("speculative", "string", "auto", check=lambda v: v in SPECULATIVE_MODES,
               rule="speculative must be one of " + ", ".join(SPECULATIVE_MODES) + ", got {value!r}"),
        Option("draft_num_predict", "int", 4, check=lambda v: 0 <= v <= MAX_DRAFT,
               rule=f"draft_num_predict must be between 0 and {MAX_DRAFT}, got {{value}}"),
        Option("draft_min", "int", 0, check=lambda v: 0 <= v <= MAX_DRAFT,
               rule=f"draft_min must be between 0 and {MAX_DRAFT}, got {{value}}"),
        Option("draft_p_min", "float", 0.75, check=_unit, rule=_UNIT),
        # Engine-only: the server derives them from ``format``; in-process callers may set them.
        Option("grammar", "string", "", public=False),
        Option("logit_bias", "map", {}, public=False),
    )
}

# Accepted for compatibility but without effect (Ollama dropped them); the Modelfile
# parser warns about the ones in DEPRECATED_PARAMETERS.
LEGACY_OPTIONS = frozenset({"numa", "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock",
                            "embedding_only", "penalize_newline", "tfs_z"})
DEPRECATED_PARAMETERS = LEGACY_OPTIONS - {"numa", "embedding_only", "tfs_z"}


def public_option(name: str) -> Option | None:
    """The table entry for a name a request or Modelfile may use."""
    option = OPTIONS.get(name)
    return option if option is not None and option.public else None


def _parameter_option(name: str) -> Option:
    """The table entry for a PARAMETER or stored parameter name; OptionError (a ValueError) if none."""
    option = public_option(name)
    if option is None:
        raise OptionError(f"unknown parameter '{name}'")
    if option.request_only:
        raise OptionError(f"parameter '{name}' can only be set in a request's options")
    return option


def _map(option: Option, value: Any) -> dict[int, float]:
    if not isinstance(value, Mapping):
        raise option.type_error()
    out: dict[int, float] = {}
    for tok, bias in value.items():
        try:
            out[int(tok)] = float(bias)
        except (TypeError, ValueError):
            raise OptionError(f"logit_bias entries must map token ids to numbers, got {tok!r}: {bias!r}") from None
    return out


def coerce(name: str, value: Any) -> Any:
    """Check one JSON value's type against the table and normalise it.

    Ints accept any finite JSON number (truncated) within 64 bits (else an
    OptionError, 400), floats accept ints, lists hold strings. Raises
    OptionTypeError with Ollama's wording.
    """
    option = OPTIONS[name]
    kind = option.type
    if option.convert is not None:
        return option.convert(value)
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise option.type_error()
        if kind == "float":
            return float(value)
        if not math.isfinite(value):
            raise option.type_error()
        if not -(2**63) <= value < 2**63:  # e.g. 1e300: nothing downstream can hold it
            raise OptionError(f'invalid value for "options.{name}": integers must fit in 64 bits')
        return int(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise option.type_error()
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise option.type_error()
        return value
    if kind == "map":
        return _map(option, value)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise option.type_error()
    return list(value)


def check_values(values: Mapping[str, Any], applies: Iterable[Applies]) -> None:
    """Raise OptionError for the first meaningless value among options that apply there."""
    wanted = set(applies)
    for name, value in values.items():
        option = OPTIONS.get(name)
        if option is not None and option.applies in wanted:
            error = option.value_error(value)
            if error is not None:
                raise error


def validate_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Normalise a request's ``options``: unknown and legacy keys are dropped
    (unknown ones logged), ``null`` values skipped, types checked."""
    out: dict[str, Any] = {}
    for name, value in (options or {}).items():
        if value is None:
            continue
        if public_option(name) is None:
            if name not in LEGACY_OPTIONS:
                log.warning("invalid option provided: %s", name)
            continue
        out[name] = coerce(name, value)
    return out


def merge_options(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Later layers win (the model's PARAMETERs, then the request's options); load options checked."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(validate_options(layer))
    check_values(merged, ("load", "context"))
    return merged


def check_parameter(name: str, value: Any) -> Any:
    """One /api/create ``parameters`` entry, as stored: OptionError for an unknown name
    (``unknown parameter 'x'``) or a wrong type (400, as this is persisted)."""
    option = _parameter_option(name)
    if option.type == "list" and isinstance(value, str):
        value = [value]
    try:
        coerce(name, value)
    except OptionTypeError as exc:
        raise OptionError(exc.message) from None
    return list(value) if isinstance(value, tuple) else value


def parse_parameter_text(name: str, text: str) -> Any:
    """Convert a Modelfile ``PARAMETER name value`` string to its typed value.

    Raises ValueError with Ollama's wording (``invalid float value [x]``).
    """
    option = _parameter_option(name)
    if option.type == "int":
        try:
            return int(text, 10)
        except ValueError:
            raise ValueError(f"invalid int value [{text}]") from None
    if option.type == "float":
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"invalid float value [{text}]") from None
        if not math.isfinite(number):
            raise ValueError(f"invalid float value [{text}]")
        return number
    if option.type == "bool":
        lowered = text.lower()
        if lowered in ("1", "t", "true"):
            return True
        if lowered in ("0", "f", "false"):
            return False
        raise ValueError(f"invalid bool value [{text}]")
    if option.type == "list":
        return [text]
    return text


def default_options() -> dict[str, Any]:
    """Defaults of every public option that has one (``None`` means unset/auto)."""
    return {name: list(o.default) if isinstance(o.default, tuple) else o.default
            for name, o in OPTIONS.items() if o.public and o.default is not None}


def struct_fields(*applies: Applies) -> list[tuple[str, Any, Any]]:
    """``(name, type, default)`` of the options that apply there, for ``msgspec.defstruct``."""
    fields = []
    for option in OPTIONS.values():
        if option.applies in applies:
            py_type = option.py_type or _PY_TYPES[option.type]
            if option.default is None:
                py_type = py_type | None
            default = list(option.default) if isinstance(option.default, tuple) else option.default
            fields.append((option.name, py_type, default))
    return fields


def resolve_num_ctx(requested: int, default: int, n_ctx_train: int) -> int:
    """The context a runner gets: the request's, else ``default`` (PYLLAMA_CONTEXT_LENGTH),
    else 4096; capped at the model's training context; at least 4."""
    num_ctx = requested if requested > 0 else (default or DEFAULT_NUM_CTX)
    if n_ctx_train > 0:
        num_ctx = min(num_ctx, n_ctx_train)
    return max(num_ctx, MIN_NUM_CTX)
