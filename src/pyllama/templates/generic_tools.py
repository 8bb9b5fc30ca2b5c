"""Tool calling for models whose template cannot render tools: our generic format.

A chat that carries tools to a model whose template has no tool support
(no ``.Tools`` in its TEMPLATE, no tool handling in its Jinja template)
would get Ollama's 400. Instead the tools are described in a system
instruction, the answer is constrained by a grammar to one JSON object,
either ``{"response": "..."}`` (a reply to the user) or ``{"tool_calls":
[{"name": ..., "arguments": {...}}]}`` whose arguments follow each tool's
JSON Schema, and :class:`GenericAnswerParser` turns that object back into
content (streamed as it is decoded) or tool calls.

llama.cpp's common chat code at our pinned tree has no such fallback any
more (its autoparser builds no tool grammar or parser for a template that
does not render tools), so the wording, the grammar's schema and the
parser are ours; the grammar itself comes from llama.cpp's JSON-Schema
converter. Earlier tool turns of the conversation are written in the same
format, so the model sees its own calls and their results.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pyllama.templates.messages import Msg, tool_call
from pyllama.templates.parsers import OutputParser, ParsedDelta, new_call_id

INSTRUCTION = """You can use tools. Each line below describes one tool as JSON: its name, what it does, \
and the JSON Schema of its arguments.

{tools}

Answer with exactly one JSON object and nothing else, in one of two forms:
- to call one or more tools: {{"tool_calls": [{{"name": "<tool name>", "arguments": {{<arguments>}}}}]}}
- to reply to the user: {{"response": "<your reply>"}}
Call a tool only when it helps to answer. The results of your tool calls come back \
in a message of the form {{"tool_results": [...]}}."""


def tool_functions(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each tool's name, description and parameters (the ``function`` part of Ollama's shape)."""
    out = []
    for tool in tools:
        fn = tool.get("function") if isinstance(tool.get("function"), Mapping) else tool
        entry: dict[str, Any] = {"name": str(fn.get("name") or "")}
        if fn.get("description"):
            entry["description"] = fn["description"]
        params = fn.get("parameters")
        entry["parameters"] = dict(params) if isinstance(params, Mapping) and params else {"type": "object"}
        out.append(entry)
    return out


def instruction(tools: Sequence[Mapping[str, Any]]) -> str:
    """The system text that describes the tools and the answer format."""
    lines = "\n".join(json.dumps(fn, ensure_ascii=False) for fn in tool_functions(tools))
    return INSTRUCTION.format(tools=lines)


def answer_schema(tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """JSON Schema of a valid answer: a reply, or calls whose arguments match their tool's schema."""
    calls = [{"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
              "properties": {"name": {"const": fn["name"]}, "arguments": fn["parameters"]}}
             for fn in tool_functions(tools)]
    call = calls[0] if len(calls) == 1 else {"oneOf": calls}
    return {"oneOf": [
        {"type": "object", "additionalProperties": False, "required": ["response"],
         "properties": {"response": {"type": "string"}}},
        {"type": "object", "additionalProperties": False, "required": ["tool_calls"],
         "properties": {"tool_calls": {"type": "array", "minItems": 1, "items": call}}},
    ]}


def answer_grammar(tools: Sequence[Mapping[str, Any]]) -> str:
    """GBNF for :func:`answer_schema`; a tool schema llama.cpp cannot convert is a ValueError naming it."""
    from pyllama import _native

    for fn in tool_functions(tools):
        try:
            _native.json_schema_to_grammar(fn["parameters"])
        except (ValueError, RuntimeError, TypeError) as exc:
            raise ValueError(f"invalid JSON schema in the parameters of tool {json.dumps(fn['name'])}: {exc}") from None
    try:
        grammar = _native.json_schema_to_grammar(answer_schema(tools))
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ValueError(f"the tools' JSON schemas cannot be combined into a grammar: {exc}") from None
    # One blank at most between tokens: small models like to pretty-print, which spends the
    # answer's tokens (and grammar checks) on indentation.
    return _SPACE_RULE.sub('space ::= | " "', grammar)


_SPACE_RULE = re.compile(r"^space ::= .*$", re.MULTILINE)


def generic_messages(messages: Sequence[Msg], tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as a template without tool support can render it.

    The instruction joins the first system message (or becomes one);
    earlier assistant turns are written in the answer format; tool results
    become one user message per run, ``{"tool_results": [...]}``. A final
    assistant message (a prefill) is left as it is.
    """
    out: list[dict[str, Any]] = []
    text = instruction(tools)
    if messages and messages[0].get("role") == "system":
        first = dict(messages[0])
        first["content"] = f"{first.get('content') or ''}\n\n{text}".lstrip("\n")
        out.append(first)
        rest = list(messages[1:])
    else:
        out.append({"role": "system", "content": text})
        rest = list(messages)
    results: list[dict[str, Any]] = []
    images: list[Any] = []
    for i, message in enumerate(rest):
        role = message.get("role")
        if role == "tool":
            result: dict[str, Any] = {}
            if message.get("tool_name"):
                result["name"] = message["tool_name"]
            if message.get("tool_call_id"):
                result["tool_call_id"] = message["tool_call_id"]
            result["content"] = message.get("content") or ""
            results.append(result)
            images += list(message.get("images") or [])
            continue
        if results:
            out.append(_results_message(results, images))
            results, images = [], []
        if role == "assistant" and i < len(rest) - 1:
            out.append(_assistant_turn(message))
        else:
            out.append(dict(message))
    if results:
        out.append(_results_message(results, images))
    return out


def _results_message(results: list[dict[str, Any]], images: list[Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "user", "content": json.dumps({"tool_results": results}, ensure_ascii=False)}
    if images:
        message["images"] = images
    return message


def _assistant_turn(message: Msg) -> dict[str, Any]:
    turn = {k: v for k, v in message.items() if k != "tool_calls"}
    calls = [{"name": (c.get("function") or {}).get("name", ""), "arguments": (c.get("function") or {}).get(
        "arguments") or {}} for c in message.get("tool_calls") or []]
    content = str(message.get("content") or "")
    if calls:
        envelope = json.dumps({"tool_calls": calls}, ensure_ascii=False)
        turn["content"] = f"{content}\n{envelope}" if content else envelope
    else:
        turn["content"] = json.dumps({"response": content}, ensure_ascii=False)
    return turn


_OPENING = re.compile(r'\{\s*"(response|tool_calls)"\s*:\s*')
_HOLD = 64  # how much of an unrecognised "{..." opening waits before it counts as plain text


class GenericAnswerParser:
    """The generic answer -> content (streamed) or tool calls (whole, as Ollama sends them).

    ``inner`` is the model's own parser without tools (thinking tags are
    split there); its content is the JSON answer. Text that is not in the
    format (a user ``format`` won over the tool grammar, or output before
    the grammar applies) is passed on as content unchanged.
    """

    def __init__(self, inner: OutputParser, tools: Sequence[Mapping[str, Any]]) -> None:
        self.inner = inner
        self.names = {fn["name"] for fn in tool_functions(tools)}
        self.text = ""
        self.mode = "start"  # start | response | calls | raw | done
        self.pos = 0

    def feed(self, text: str) -> ParsedDelta:
        return self._step(self.inner.feed(text), final=False)

    def finish(self) -> ParsedDelta:
        return self._step(self.inner.finish(), final=True)

    def _step(self, delta: ParsedDelta, final: bool) -> ParsedDelta:
        out = ParsedDelta(thinking=delta.thinking, tool_calls=list(delta.tool_calls))
        self.text += delta.content
        if self.mode == "start":
            self._opening(final)
        if self.mode == "response":
            out.content = self._response()
        elif self.mode == "calls":
            out.content, calls = self._calls(final)
            out.tool_calls += calls
        elif self.mode == "raw":
            out.content, self.pos = self.text[self.pos:], len(self.text)
        return out

    def _opening(self, final: bool) -> None:
        start = len(self.text) - len(self.text.lstrip())
        body = self.text[start:]
        if not body:
            return
        match = _OPENING.match(body)
        if match and match.group(1) == "response" and match.end() < len(body):
            if body[match.end()] == '"':
                self.mode, self.pos = "response", start + match.end() + 1
                return
            self.mode = "raw"
        elif match and match.group(1) == "tool_calls":
            self.mode, self.pos = "calls", start
        elif not body.startswith("{") or final or len(body) > _HOLD:
            self.mode = "raw"
        if self.mode == "raw":
            self.pos = 0

    def _response(self) -> str:
        """Decode the reply string as far as it is complete (escapes and surrogate pairs whole)."""
        text, i, n = self.text, self.pos, len(self.text)
        safe, closed = i, False
        while i < n:
            c = text[i]
            if c == '"':
                closed = True
                break
            if c == "\\":
                width = 6 if text[i + 1:i + 2] == "u" else 2
                if width == 6 and 0xD8 <= _hex_byte(text[i + 2:i + 4]) <= 0xDB:
                    width = 12  # a high surrogate comes with its low half
                if i + width > n:
                    break
                i += width
            else:
                i += 1
            safe = i
        piece = text[self.pos:safe]
        try:
            decoded = json.loads(f'"{piece}"', strict=False)
        except json.JSONDecodeError:
            decoded = piece
        self.pos = safe
        if closed:
            self.mode = "done"
        return str(decoded)

    def _calls(self, final: bool) -> tuple[str, list[dict[str, Any]]]:
        body = self.text[self.pos:].strip()
        if body.endswith("}"):
            try:
                obj = json.loads(body)
            except json.JSONDecodeError:
                obj = None
            calls = self._valid_calls(obj)
            if calls is not None:
                self.mode = "done"
                return "", calls
        if final:
            self.mode = "done"  # cut short (num_predict) or not in the format: nothing is dropped
            return self.text[self.pos:], []
        return "", []

    def _valid_calls(self, obj: Any) -> list[dict[str, Any]] | None:
        items = obj.get("tool_calls") if isinstance(obj, dict) else None
        if not isinstance(items, list) or not items:
            return None
        calls = []
        for index, item in enumerate(items):
            if not isinstance(item, dict) or item.get("name") not in self.names:
                return None
            arguments = item.get("arguments")
            if not isinstance(arguments, dict):
                return None
            calls.append(tool_call(str(item["name"]), arguments, index, new_call_id()))
        return calls


def _hex_byte(text: str) -> int:
    try:
        return int(text, 16) if len(text) == 2 else -1
    except ValueError:
        return -1

