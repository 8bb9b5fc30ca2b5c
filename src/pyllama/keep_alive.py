"""``keep_alive`` values as Ollama reads and prints them.

A number is seconds (fractions allowed); a string is a Go duration
(``"300ms"``, ``"5m"``, ``"1h30m"``); anything negative means forever. The
result is seconds as a float, ``math.inf`` for forever, 0 for "unload when
the request ends".
"""

from __future__ import annotations

import math
import re

FOREVER = math.inf

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)([^\d.]*)")


class KeepAliveError(ValueError):
    """A keep_alive value Ollama would reject with 400 (the message is Go's)."""


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds."""
    raw = text
    sign = 1.0
    if text[:1] in "+-" and text:
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise KeepAliveError(f'time: invalid duration "{raw}"')
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise KeepAliveError(f'time: invalid duration "{raw}"')
        number, unit = match.groups()
        if not unit:
            raise KeepAliveError(f'time: missing unit in duration "{raw}"')
        if unit not in _UNITS:
            raise KeepAliveError(f'time: unknown unit "{unit}" in duration "{raw}"')
        total += float(number) * _UNITS[unit]
        pos = match.end()
    return sign * total


def parse_keep_alive(value: object) -> float:
    """Seconds to keep a model loaded after a request: ``math.inf`` when
    negative, 0 to unload at once. Raises KeepAliveError like Ollama's 400s."""
    if isinstance(value, bool):
        raise KeepAliveError("Unsupported type: 'bool'")
    if isinstance(value, (int, float)):
        seconds = float(value)
        if math.isnan(seconds):
            raise KeepAliveError("Unsupported type: 'float'")
    elif isinstance(value, str):
        seconds = parse_duration(value.strip())
    else:
        raise KeepAliveError(f"Unsupported type: '{type(value).__name__}'")
    return FOREVER if seconds < 0 else seconds


def format_duration(seconds: float) -> str:
    """Go's Duration.String(): ``5m0s``, ``1h30m0s``, ``300ms``; ``-1`` for forever."""
    if math.isinf(seconds) or seconds < 0:
        return "-1"
    if seconds == 0:
        return "0s"
    if seconds < 1:
        for unit, scale in (("ms", 1e-3), ("\u00b5s", 1e-6), ("ns", 1e-9)):
            if seconds >= scale:
                return f"{_trim(seconds / scale)}{unit}"
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{int(hours)}h"
    if hours or minutes:
        out += f"{int(minutes)}m"
    return out + f"{_trim(secs)}s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def parse_env_keep_alive(text: str) -> float:
    """PYLLAMA_KEEP_ALIVE / OLLAMA_KEEP_ALIVE: a duration, or plain integer seconds."""
    text = text.strip()
    try:
        return parse_keep_alive(int(text))
    except ValueError:
        return parse_keep_alive(text)
