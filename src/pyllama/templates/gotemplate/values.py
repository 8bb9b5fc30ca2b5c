"""How Python values behave as Go values inside a template.

Templates see plain Python data: ``str``/``int``/``float``/``bool``/``None``,
``list`` (a Go slice), ``dict`` (a Go map: printed and marshalled with
sorted keys), :class:`OrderedMap` (an object whose key order matters, like
Ollama's tool-call arguments) and :class:`GoStruct` subclasses (Go structs
with named fields, optionally a ``String()`` method). This module holds the
Go rules for those values: truthiness, ``fmt.Sprint`` printing and
``encoding/json`` marshalling, which templates show to the model verbatim.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, ClassVar


class NoValue:
    """Go's invalid ``reflect.Value``: a missing map key; prints ``<no value>``."""

    _instance: ClassVar[NoValue | None] = None

    def __new__(cls) -> NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


NO_VALUE = NoValue()


class OrderedMap(dict[str, Any]):
    """A JSON object whose key order is kept when printed or marshalled.

    Ollama keeps tool-call arguments and tool parameter properties in the
    order the client sent them; a plain ``dict`` stands for a Go map, whose
    keys Go sorts.
    """


class GoStruct:
    """A Go struct as templates see it: exported fields plus optional String()."""

    go_type: ClassVar[str] = "struct"
    go_fields: ClassVar[tuple[str, ...]] = ()

    def go_field(self, name: str) -> Any:
        return getattr(self, name)

    def go_json(self) -> Any:
        """The value ``encoding/json`` would produce, as JSON-ready Python data."""
        return OrderedMap((name, go_json_value(getattr(self, name))) for name in self.go_fields)

    def go_string(self) -> str | None:
        """``String()`` if the Go type has one (fmt uses it for printing)."""
        return None


class GoList(list[Any]):
    """A Go slice type with its own String()/MarshalJSON (e.g. a JSON-schema type list)."""

    def go_string(self) -> str:
        return "[" + " ".join(go_sprint(v, False) for v in self) + "]"

    def go_json(self) -> Any:
        return list(self)


def go_json_value(value: Any) -> Any:
    """Convert nested GoStructs to their JSON shape, leaving other data alone."""
    if isinstance(value, (GoStruct, GoList)):
        return value.go_json()
    if isinstance(value, OrderedMap):
        return OrderedMap((k, go_json_value(v)) for k, v in value.items())
    if isinstance(value, dict):
        return {k: go_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [go_json_value(v) for v in value]
    return value


def go_type_name(value: Any) -> str:
    """Go's name for the type of ``value`` (used in error messages)."""
    if isinstance(value, GoStruct):
        return value.go_type
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if value is None or value is NO_VALUE:
        return "<nil>"
    return type(value).__name__


def is_true(value: Any) -> bool:
    """Go template truthiness: zero values and empty collections are false."""
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, (str, list, tuple, dict, bytes)):
        return len(value) > 0
    return True  # structs are always true


# -- numbers ------------------------------------------------------------------
def _shortest(value: float) -> tuple[str, int]:
    """Shortest round-trip digits of abs(value) and the decimal point position."""
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digit_tuple)).lstrip("0") or "0"
    point = len(text) + exponent  # the decimal point sits after `point` digits
    return text.rstrip("0") or "0", point


def _fixed(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * (-point) + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _exp(digits: str, point: int) -> str:
    exp = point - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def format_float(value: float) -> str:
    """``fmt.Sprint(float64)`` (%g, shortest): %e form when exp < -4 or >= 6."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    digits, point = _shortest(value)
    exp = point - 1
    body = _exp(digits, point) if exp < -4 or exp >= 6 else _fixed(digits, point)
    return "-" + body if value < 0 else body


def json_float(value: float) -> str:
    """``encoding/json`` float64: plain digits unless tiny (<1e-6) or huge (>=1e21)."""
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    digits, point = _shortest(value)
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        body = _exp(digits, point)
        mant, _, exp = body.partition("e")
        sign, num = exp[0], exp[1:].lstrip("0") or "0"
        body = f"{mant}e{sign}{num}"
    else:
        body = _fixed(digits, point)
    return "-" + body if value < 0 else body


# -- printing -----------------------------------------------------------------
def go_sprint(value: Any, top: bool = True) -> str:
    """``fmt.Sprint`` of one value (``top``: outside any slice/map/struct)."""
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        return "<no value>" if top else "<nil>"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, GoStruct):
        text = value.go_string()
        if text is not None:
            return text
        return "{" + " ".join(go_sprint(value.go_field(f), False) for f in value.go_fields) + "}"
    if isinstance(value, GoList):
        return value.go_string()
    if isinstance(value, OrderedMap):
        return json_marshal(value)
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: _sort_key(kv[0]))
        return "map[" + " ".join(f"{go_sprint(k, False)}:{go_sprint(v, False)}" for k, v in items) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_sprint(v, False) for v in value) + "]"
    if isinstance(value, bytes):
        return "[" + " ".join(str(b) for b in value) + "]"
    return str(value)


def _sort_key(key: Any) -> tuple[int, Any]:
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return (0, key)
    return (1, str(key))


# -- JSON ---------------------------------------------------------------------
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def json_string(text: str) -> str:
    """A JSON string as Go writes it (HTML-safe escapes for < > &)."""
    out = ['"']
    for ch in text:
        esc = _JSON_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def json_marshal(value: Any) -> str:
    """``json.Marshal``: compact, maps sorted by key, OrderedMap and structs in order."""
    if value is None or value is NO_VALUE:
        return "null"
    if isinstance(value, (GoStruct, GoList)):
        return json_marshal(value.go_json())
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"json: unsupported value: {format_float(value)}")
        return json_float(value)
    if isinstance(value, OrderedMap):
        return "{" + ",".join(f"{json_string(str(k))}:{json_marshal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "{" + ",".join(f"{json_string(str(k))}:{json_marshal(v)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(json_marshal(v) for v in value) + "]"
    raise ValueError(f"json: unsupported type: {go_type_name(value)}")
