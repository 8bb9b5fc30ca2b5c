"""Reading and decoding JSON request bodies within fixed limits.

Every JSON route decodes its body here, so a hostile body is refused the
same way everywhere, before anything else looks at it: bigger than
``MAX_BODY_BYTES`` (413), nested deeper than ``MAX_DEPTH`` (400; msgspec
and everything downstream recurse per level), or holding an integer outside
the signed 64-bit range anywhere (400 naming the field; such a number could
reach nothing but an overflow further in). The checks are cheap for
ordinary bodies: a byte count of brackets and a search for 19-digit runs
decide whether the exact (slower) scans run at all.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from litestar import Request

from pyllama.server.errors import RequestError
from pyllama.store.errors import capped

T = TypeVar("T")

MAX_BODY_BYTES = 128 * 1024 * 1024  # base64 images make chat bodies large; blob uploads are not JSON
MAX_DEPTH = 128  # arrays + objects; JSON schemas and tool parameters nest a few levels, not hundreds

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_LONG_DIGITS = re.compile(rb"\d{19}")  # no run this long: every integer in the body fits in 64 bits
_STRING_OR_BRACKET = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


async def read_body(request: Request[Any, Any, Any]) -> bytes:
    """The whole body, refused with 413 as soon as it passes MAX_BODY_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestError(_too_large(), 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestError(_too_large(), 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> str:
    return f"request body too large: the limit is {MAX_BODY_BYTES // (1024 * 1024)} MiB"


def nesting_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (brackets inside strings skipped)."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return body.count(b"[") + body.count(b"{")  # an upper bound, enough to pass the check
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    break
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def _wide_integer(value: Any, path: str) -> str | None:
    """The path of the first integer outside int64 in a decoded JSON value, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return path if not INT64_MIN <= value <= INT64_MAX else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _wide_integer(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _wide_integer(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def decode_json(body: bytes, type_: type[T]) -> T:
    """Decode a JSON body into ``type_`` the way Ollama answers mistakes (400 + message)."""
    if not body.strip():
        raise RequestError("missing request body")
    if nesting_depth(body) > MAX_DEPTH:
        raise RequestError(f"request body is nested too deeply: the limit is {MAX_DEPTH} levels of arrays and objects")
    try:
        if _LONG_DIGITS.search(body):
            found = _wide_integer(msgspec.json.decode(body), "")
            if found is not None:
                raise RequestError(f'invalid value for "{capped(found or "$", 200)}": integers must fit in 64 bits '
                                   f"({INT64_MIN} to {INT64_MAX})")
        return msgspec.json.decode(body, type=type_)
    except msgspec.DecodeError as exc:
        raise RequestError(str(exc)) from None
    except RecursionError:
        raise RequestError("request body is nested too deeply") from None


async def decode_body(request: Request[Any, Any, Any], type_: type[T]) -> T:
    """Read (within the size limit) and decode a JSON request body."""
    return decode_json(await read_body(request), type_)
