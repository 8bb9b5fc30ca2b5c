"""Ollama ``options`` mappings -> ``SamplingOptions``, and value checks.

Types, defaults and per-value rules come from ``pyllama.options``; this
module adds the checks that need several fields or the model (lazy grammar
triggers, logit_bias token ids). The server checks types once at the HTTP
boundary; the engine checks values again so in-process callers get the
same clear errors.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import msgspec

from pyllama.engine.errors import InvalidRequestError
from pyllama.engine.types import SamplingOptions
from pyllama.options import OPTIONS, OptionError, check_values, coerce

log = logging.getLogger(__name__)

MAX_TOP_LOGPROBS = 20
TRIGGER_KINDS = ("word", "pattern", "pattern_full", "token")  # llama.cpp's common_grammar_trigger_type


def options_from_mapping(options: Mapping[str, Any] | None, base: SamplingOptions | None = None) -> SamplingOptions:
    """Overlay an Ollama ``options`` object on ``base`` (Ollama defaults when
    omitted). Options that are not sampling options (num_ctx belongs to the
    scheduler) and unknown keys are ignored, as Ollama does; ``None`` values
    are skipped; a string ``stop`` is one stop."""
    values: dict[str, Any] = {}
    try:
        for key, value in (options or {}).items():
            option = OPTIONS.get(key)
            if value is None:
                continue
            if option is None or option.applies != "sampling":
                log.debug("ignoring option %r", key)
                continue
            if option.type == "list" and isinstance(value, str):
                value = [value]
            values[key] = coerce(key, value)
    except OptionError as exc:
        raise InvalidRequestError(exc.message) from None
    opts = msgspec.structs.replace(base or SamplingOptions(), **values)
    validate_options(opts)
    return opts


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidRequestError(message)


def validate_options(opts: SamplingOptions, n_vocab: int | None = None) -> None:
    """Reject values that have no meaning (rather than silently clamping)."""
    try:
        check_values(msgspec.structs.asdict(opts), ("sampling",))
    except OptionError as exc:
        raise InvalidRequestError(exc.message) from None
    kinds = {t.kind for t in opts.grammar_triggers} - set(TRIGGER_KINDS)
    _check(not kinds, f"unknown grammar trigger kind(s): {', '.join(sorted(kinds))} (expected {', '.join(TRIGGER_KINDS)})")
    # as llama-server: a lazy grammar without triggers would never apply
    _check(not (opts.grammar and opts.grammar_lazy) or bool(opts.grammar_triggers),
           "a lazy grammar needs at least one trigger")
    if n_vocab is not None:
        for tok, bias in opts.logit_bias.items():
            _check(0 <= tok < n_vocab, f"logit_bias token {tok} is not in the vocabulary (0..{n_vocab - 1})")
            _check(not math.isnan(bias), f"logit_bias for token {tok} is NaN")


def validate_top_logprobs(top_logprobs: int) -> None:
    """Ollama's bound on top_logprobs."""
    _check(0 <= top_logprobs <= MAX_TOP_LOGPROBS, f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}")
