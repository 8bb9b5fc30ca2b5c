"""Ollama's API types (``api.Message``, ``api.Tool``, ...) as templates see them.

TEMPLATE layers were written against Ollama's Go structs: they read
``.Role``/``.Content``/``.ToolCalls`` fields, print ``{{ .Function }}`` (a
``String()`` that returns JSON) and call ``json`` on them. These classes
give our renderer the same fields, the same printing and the same JSON
(field order, ``omitempty``, key order of arguments and properties).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pyllama.templates.gotemplate.values import GoList, GoStruct, OrderedMap, json_marshal


def _any(value: Any) -> Any:
    """A decoded JSON value as Go's ``any`` holds it: every number is a float64."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _any(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_any(v) for v in value]
    return value


def _ordered(value: Any) -> OrderedMap:
    """A JSON object kept in the client's key order (nested objects stay Go maps)."""
    if isinstance(value, str):
        value = json.loads(value, object_pairs_hook=OrderedMap) if value.strip() else {}
    return OrderedMap((str(k), _any(v)) for k, v in dict(value or {}).items())


def _omit(out: OrderedMap, key: str, value: Any) -> None:
    """``omitempty``: skip zero values and empty collections."""
    if value is None or value == "" or value == 0 and not isinstance(value, bool) or value is False:
        return
    if isinstance(value, (list, tuple, dict)) and not value:
        return
    out[key] = value


class PropertyType(GoList):
    """A JSON-schema ``type``: one name or several; marshals one name as a string."""

    def go_string(self) -> str:
        if not self:
            return ""
        if len(self) == 1:
            return str(self[0])
        return super().go_string()

    def go_json(self) -> Any:
        return self[0] if len(self) == 1 else list(self)


class ToolProperty(GoStruct):
    go_type = "api.ToolProperty"
    go_fields = ("AnyOf", "Type", "Items", "Description", "Enum", "Properties", "Required")
    __slots__ = go_fields

    def __init__(self, data: Mapping[str, Any]) -> None:
        kind = data.get("type")
        self.AnyOf = [ToolProperty(p) for p in data.get("anyOf") or []]
        self.Type = PropertyType([kind] if isinstance(kind, str) else list(kind or []))
        self.Items = _any(data.get("items"))
        self.Description = str(data.get("description") or "")
        self.Enum = _any(list(data.get("enum") or []))
        props = data.get("properties")
        self.Properties = None if props is None else OrderedMap((k, ToolProperty(v)) for k, v in props.items())
        self.Required = list(data.get("required") or [])

    def go_json(self) -> Any:
        out = OrderedMap()
        _omit(out, "anyOf", [p.go_json() for p in self.AnyOf])
        if self.Type:
            out["type"] = self.Type.go_json()
        _omit(out, "items", self.Items)
        _omit(out, "description", self.Description)
        _omit(out, "enum", self.Enum)
        if self.Properties is not None:
            out["properties"] = OrderedMap((k, v.go_json()) for k, v in self.Properties.items())
        _omit(out, "required", self.Required)
        return out

    def to_typescript(self) -> str:
        """Ollama's ``ToTypeScriptType`` (used by the ``toTypeScriptType`` function)."""
        if self.AnyOf:
            return " | ".join(p.to_typescript() for p in self.AnyOf)
        if not self.Type:
            return "any"
        return " | ".join(_TS_TYPES.get(t, "any") for t in self.Type)


_TS_TYPES = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean",
             "array": "any[]", "object": "Record<string, any>", "null": "null"}


class ToolFunctionParameters(GoStruct):
    go_type = "api.ToolFunctionParameters"
    go_fields = ("Type", "Defs", "Items", "Required", "Properties")
    __slots__ = go_fields

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.Type = str(data.get("type") or "")
        self.Defs = _any(data.get("$defs"))
        self.Items = _any(data.get("items"))
        self.Required = list(data.get("required") or [])
        props = data.get("properties")
        self.Properties = None if props is None else OrderedMap((k, ToolProperty(v)) for k, v in props.items())

    def go_json(self) -> Any:
        out = OrderedMap(type=self.Type)
        _omit(out, "$defs", self.Defs)
        _omit(out, "items", self.Items)
        _omit(out, "required", self.Required)
        out["properties"] = None if self.Properties is None else OrderedMap(
            (k, v.go_json()) for k, v in self.Properties.items())
        return out

    def go_string(self) -> str:
        return json_marshal(self)


class ToolFunction(GoStruct):
    go_type = "api.ToolFunction"
    go_fields = ("Name", "Description", "Parameters")
    __slots__ = go_fields

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.Name = str(data.get("name") or "")
        self.Description = str(data.get("description") or "")
        self.Parameters = ToolFunctionParameters(data.get("parameters") or {})

    def go_json(self) -> Any:
        out = OrderedMap(name=self.Name)
        _omit(out, "description", self.Description)
        out["parameters"] = self.Parameters.go_json()
        return out

    def go_string(self) -> str:
        return json_marshal(self)


class Tool(GoStruct):
    go_type = "api.Tool"
    go_fields = ("Type", "Items", "Function")
    __slots__ = go_fields

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.Type = str(data.get("type") or "")
        self.Items = _any(data.get("items"))
        self.Function = ToolFunction(data.get("function") or {})

    def go_json(self) -> Any:
        out = OrderedMap(type=self.Type)
        _omit(out, "items", self.Items)
        out["function"] = self.Function.go_json()
        return out

    def go_string(self) -> str:
        return json_marshal(self)


class ToolCallFunction(GoStruct):
    go_type = "api.ToolCallFunction"
    go_fields = ("Index", "Name", "Arguments")
    __slots__ = go_fields

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.Index = int(data.get("index") or 0)
        self.Name = str(data.get("name") or "")
        self.Arguments = _ordered(data.get("arguments"))

    def go_json(self) -> Any:
        return OrderedMap(index=self.Index, name=self.Name, arguments=self.Arguments)


class ToolCall(GoStruct):
    go_type = "api.ToolCall"
    go_fields = ("ID", "Function")
    __slots__ = go_fields

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.ID = str(data.get("id") or "")
        self.Function = ToolCallFunction(data.get("function") or {})

    def go_json(self) -> Any:
        out = OrderedMap()
        _omit(out, "id", self.ID)
        out["function"] = self.Function.go_json()
        return out


class Message(GoStruct):
    go_type = "api.Message"
    go_fields = ("Role", "Content", "Thinking", "Images", "ToolCalls", "ToolName", "ToolCallID")
    __slots__ = go_fields

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.Role = str(data.get("role") or "")
        self.Content = str(data.get("content") or "")
        self.Thinking = str(data.get("thinking") or "")
        self.Images = [_image_bytes(i) for i in data.get("images") or []]
        self.ToolCalls = [ToolCall(c) for c in data.get("tool_calls") or []]
        self.ToolName = str(data.get("tool_name") or "")
        self.ToolCallID = str(data.get("tool_call_id") or "")

    def go_json(self) -> Any:
        out = OrderedMap(role=self.Role, content=self.Content)
        _omit(out, "thinking", self.Thinking)
        _omit(out, "images", [base64.b64encode(i).decode() for i in self.Images])
        _omit(out, "tool_calls", [c.go_json() for c in self.ToolCalls])
        _omit(out, "tool_name", self.ToolName)
        _omit(out, "tool_call_id", self.ToolCallID)
        return out


def _image_bytes(image: Any) -> bytes:
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    return base64.b64decode(str(image))


def to_messages(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    return [Message(m) for m in messages]


class Tools(GoList):
    """``api.Tools``: printing the list gives its JSON."""

    def go_string(self) -> str:
        return json_marshal(list(self))


def to_tools(tools: Sequence[Mapping[str, Any]] | None) -> Tools:
    return Tools(Tool(t) for t in tools or [])
