"""Go's predefined template functions, with Go's comparison and error rules.

``and``/``or`` are evaluated lazily by the executor and are only named here.
Each function raises :class:`FuncError` with Go's wording; the executor adds
the position.
"""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Callable
from typing import Any

from pyllama.templates.gotemplate.values import (
    NO_VALUE,
    format_float,
    go_sprint,
    go_type_name,
    is_true,
)


class FuncError(Exception):
    """A template function failed; the message is Go's."""


# -- comparison ---------------------------------------------------------------
def _kind(value: Any) -> str:
    if value is None or value is NO_VALUE:
        return "invalid"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, complex):
        return "complex"
    return "other"


def _eq(arg1: Any, *args: Any) -> bool:
    if not args:
        raise FuncError("missing argument for comparison")
    k1 = _kind(arg1)
    for arg in args:
        k2 = _kind(arg)
        if k1 != k2:
            if k1 != "invalid" and k2 != "invalid":
                raise FuncError("incompatible types for comparison")
            continue
        if k1 == "other":
            if isinstance(arg1, (list, dict)) or isinstance(arg, (list, dict)):
                raise FuncError(f"non-comparable type {go_sprint(arg1)}: {go_type_name(arg1)}")
            if arg1 is arg or arg1 == arg:
                return True
        elif k1 == "invalid" or arg1 == arg:
            return True
    return False


def _ne(arg1: Any, arg2: Any) -> bool:
    return not _eq(arg1, arg2)


def _lt(arg1: Any, arg2: Any) -> bool:
    k1, k2 = _kind(arg1), _kind(arg2)
    if k1 in ("bool", "complex", "other", "invalid") or k2 in ("bool", "complex", "other", "invalid"):
        raise FuncError("invalid type for comparison")
    if k1 != k2:
        raise FuncError("incompatible types for comparison")
    return bool(arg1 < arg2)


def _le(arg1: Any, arg2: Any) -> bool:
    return _lt(arg1, arg2) or _eq(arg1, arg2)


def _gt(arg1: Any, arg2: Any) -> bool:
    return not _le(arg1, arg2)


def _ge(arg1: Any, arg2: Any) -> bool:
    return not _lt(arg1, arg2)


def _not(arg: Any) -> bool:
    return not is_true(arg)


# -- collections --------------------------------------------------------------
def _len(item: Any) -> int:
    if item is None or item is NO_VALUE:
        raise FuncError("len of nil pointer")
    if isinstance(item, str):
        return len(item.encode("utf-8"))
    if isinstance(item, (list, tuple, dict, bytes)):
        return len(item)
    raise FuncError(f"len of type {go_type_name(item)}")


def _int_index(value: Any, cap: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FuncError(f"cannot index slice/array with type {go_type_name(value)}")
    if value < 0 or value > cap:
        raise FuncError(f"index out of range: {value}")
    return value


def _index(item: Any, *indexes: Any) -> Any:
    if item is None or item is NO_VALUE:
        raise FuncError("index of untyped nil")
    for idx in indexes:
        if item is None or item is NO_VALUE:
            raise FuncError("index of nil pointer")
        if isinstance(item, dict):
            if not isinstance(idx, str):
                raise FuncError(f"value has type {go_type_name(idx)}; should be string")
            item = item.get(idx)  # a missing key gives the zero value, nil
        elif isinstance(item, str):
            data = item.encode("utf-8")
            i = _int_index(idx, len(data))
            if i == len(data):
                raise FuncError(f"index out of range: {i}")
            item = data[i]
        elif isinstance(item, (list, tuple)):
            i = _int_index(idx, len(item))
            if i == len(item):
                raise FuncError(f"index out of range: {i}")
            item = item[i]
        else:
            raise FuncError(f"can't index item of type {go_type_name(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if item is None or item is NO_VALUE:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        data = item.encode("utf-8")
        bounds = [_int_index(i, len(data)) for i in indexes]
        start, end = (bounds + [0, len(data)][len(bounds):])[:2]
        if start > end:
            raise FuncError(f"invalid slice index: {start} > {end}")
        return data[start:end].decode("utf-8", errors="replace")
    if isinstance(item, (list, tuple)):
        bounds = [_int_index(i, len(item)) for i in indexes]
        start, end = (bounds + [0, len(item)][len(bounds):])[:2]
        if start > end:
            raise FuncError(f"invalid slice index: {start} > {end}")
        return list(item[start:end])
    raise FuncError(f"can't slice item of type {go_type_name(item)}")


# -- printing -----------------------------------------------------------------
def _print(*args: Any) -> str:
    out: list[str] = []
    for i, arg in enumerate(args):
        if i > 0 and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_sprint(arg, top=False))
    return "".join(out)


def _println(*args: Any) -> str:
    return " ".join(go_sprint(a, top=False) for a in args) + "\n"


def go_quote(text: str) -> str:
    """``strconv.Quote``: printable runes kept, others escaped."""
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif ord(ch) < 0x10000:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x80 else f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _bad_verb(verb: str, arg: Any) -> str:
    return f"%!{verb}({go_type_name(arg)}={go_sprint(arg, top=False)})"


def _format_one(verb: str, flags: str, width: int | None, prec: int | None, arg: Any) -> str:
    if verb in "vs":
        if verb == "s" and isinstance(arg, (bool, int, float)):
            return _bad_verb(verb, arg)
        text = go_sprint(arg, top=False)
        if prec is not None and verb == "s":
            text = text[:prec]
    elif verb == "d":
        if isinstance(arg, bool) or not isinstance(arg, int):
            return _bad_verb(verb, arg)
        text = str(arg)
        if "+" in flags and arg >= 0:
            text = "+" + text
    elif verb == "q":
        if isinstance(arg, str):
            text = go_quote(arg)
        elif isinstance(arg, int) and not isinstance(arg, bool):
            text = "'" + chr(arg) + "'"
        else:
            return _bad_verb(verb, arg)
    elif verb == "t":
        if not isinstance(arg, bool):
            return _bad_verb(verb, arg)
        text = "true" if arg else "false"
    elif verb in "feEgG":
        if not isinstance(arg, float):
            return _bad_verb(verb, arg)
        if verb in "gG" and prec is None:
            text = format_float(arg)
        else:
            text = f"{arg:{'+' if '+' in flags else ''}.{6 if prec is None else prec}{verb}}"
    elif verb in "xX":
        if isinstance(arg, str):
            text = arg.encode("utf-8").hex()
        elif isinstance(arg, int) and not isinstance(arg, bool):
            text = format(arg, "x")
        else:
            return _bad_verb(verb, arg)
        if verb == "X":
            text = text.upper()
    elif verb == "c":
        if isinstance(arg, bool) or not isinstance(arg, int):
            return _bad_verb(verb, arg)
        text = chr(arg)
    elif verb == "T":
        text = go_type_name(arg)
    else:
        return f"%!{verb}({go_type_name(arg)}={go_sprint(arg, top=False)})"
    if width is not None and len(text) < width:
        pad = width - len(text)
        if "-" in flags:
            text = text + " " * pad
        elif "0" in flags and verb in "dfeEgGxX":
            sign = text[0] if text[:1] in "+-" else ""
            text = sign + "0" * pad + text[len(sign):]
        else:
            text = " " * pad + text
    return text


def _printf(fmt: Any, *args: Any) -> str:
    if not isinstance(fmt, str):
        raise FuncError(f"wrong type for value; expected string; got {go_type_name(fmt)}")
    out: list[str] = []
    i = 0
    argi = 0
    n = len(fmt)
    while i < n:
        ch = fmt[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        i += 1
        if i >= n:
            out.append("%!(NOVERB)")
            break
        flags = ""
        while i < n and fmt[i] in "+-# 0":
            flags += fmt[i]
            i += 1
        width: int | None = None
        start = i
        while i < n and fmt[i].isdigit():
            i += 1
        if i > start:
            width = int(fmt[start:i])
        prec: int | None = None
        if i < n and fmt[i] == ".":
            i += 1
            start = i
            while i < n and fmt[i].isdigit():
                i += 1
            prec = int(fmt[start:i] or "0")
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(verb, flags, width, prec, args[argi]))
        argi += 1
    if argi < len(args):
        extra = ", ".join(f"{go_type_name(a)}={go_sprint(a, top=False)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _html(*args: Any) -> str:
    text = _print(*args) if not (len(args) == 1 and isinstance(args[0], str)) else args[0]
    return html.escape(text, quote=False).replace("'", "&#39;").replace('"', "&#34;").replace("\0", "\ufffd")


def _urlquery(*args: Any) -> str:
    text = _print(*args) if not (len(args) == 1 and isinstance(args[0], str)) else args[0]
    return urllib.parse.quote_plus(text)


BUILTINS: dict[str, Callable[..., Any]] = {
    "eq": _eq,
    "ne": _ne,
    "lt": _lt,
    "le": _le,
    "gt": _gt,
    "ge": _ge,
    "not": _not,
    "len": _len,
    "index": _index,
    "slice": _slice,
    "print": _print,
    "println": _println,
    "printf": _printf,
    "html": _html,
    "urlquery": _urlquery,
}

LAZY = frozenset({"and", "or"})
"""Evaluated by the executor, which must not evaluate every argument."""
