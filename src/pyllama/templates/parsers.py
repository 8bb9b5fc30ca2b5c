"""Streaming parsers: model output text -> content, thinking and tool calls.

Feed each piece of generated text to an :class:`OutputParser` and send on
the :class:`ParsedDelta` it returns; call :meth:`OutputParser.finish` at the
end of generation for whatever was held back. Tool calls come out whole
(Ollama never streams a half tool call).

Two implementations, one per template kind:

* :class:`GoOutputParser` follows Ollama's own parsers for TEMPLATE models:
  thinking between the template's thinking tags, tool calls after the tag
  the template writes before ``.ToolCalls`` (``<tool_call>``,
  ``[TOOL_CALLS]``...) or, with no tag, a JSON object at the very start.
* :class:`JinjaOutputParser` runs llama.cpp's chat parser (the one matching
  the Jinja template) on the text so far and reports what changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyllama.ids import new_id
from pyllama.templates.gotemplate.values import OrderedMap
from pyllama.templates.messages import tool_call


def new_call_id() -> str:
    """A tool-call id in Ollama's form: ``call_`` + 8 of [a-z0-9]."""
    return new_id("call", "alnum", 8)


@dataclass
class ParsedDelta:
    """What one piece of output added."""

    content: str = ""
    thinking: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.content or self.thinking or self.tool_calls)

    def extend(self, other: ParsedDelta) -> None:
        self.content += other.content
        self.thinking += other.thinking
        self.tool_calls.extend(other.tool_calls)


class OutputParser(Protocol):
    def feed(self, text: str) -> ParsedDelta: ...

    def finish(self) -> ParsedDelta: ...


def _overlap(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


# -- thinking -----------------------------------------------------------------
class ThinkingParser:
    """Splits ``<think>...</think>``-style output, with Ollama's whitespace rules.

    Thinking must open the output (after white space); white space right
    after either tag is dropped; a partial closing tag is held back.
    """

    LOOKING, STARTED, THINKING, DONE_EATING, DONE = range(5)

    def __init__(self, opening: str, closing: str) -> None:
        self.opening = opening
        self.closing = closing
        self.state = self.LOOKING
        self.acc = ""

    def add(self, text: str) -> tuple[str, str]:
        """Returns (thinking, content) for this piece."""
        self.acc += text
        thinking: list[str] = []
        content: list[str] = []
        more = True
        while more:
            t, c, more = self._step()
            thinking.append(t)
            content.append(c)
        return "".join(thinking), "".join(content)

    def _step(self) -> tuple[str, str, bool]:
        trimmed = self.acc.lstrip()
        if self.state == self.LOOKING:
            if trimmed.startswith(self.opening):
                after = trimmed[len(self.opening):].lstrip()
                self.acc = after
                self.state = self.THINKING if after else self.STARTED
                return "", "", True
            if self.opening.startswith(trimmed):
                return "", "", False  # a (possibly empty) prefix of the tag: wait
            self.state = self.DONE
            text, self.acc = self.acc, ""
            return "", text, False
        if self.state == self.STARTED:
            if not trimmed:
                return "", "", False
            self.state = self.THINKING
            self.acc = trimmed
            return "", "", True
        if self.state == self.THINKING:
            acc = self.acc
            at = acc.find(self.closing)
            if at >= 0:
                rest = acc[at + len(self.closing):].lstrip()
                self.acc = ""
                self.state = self.DONE if rest else self.DONE_EATING
                return acc[:at], rest, False
            keep = _overlap(acc, self.closing)
            self.acc = acc[len(acc) - keep:] if keep else ""
            return acc[: len(acc) - keep], "", False
        if self.state == self.DONE_EATING:
            if trimmed:
                self.state = self.DONE
            self.acc = ""
            return "", trimmed, False
        text, self.acc = self.acc, ""
        return "", text, False

    def flush(self) -> tuple[str, str]:
        """What is still held back at the end of generation."""
        text, self.acc = self.acc, ""
        if self.state in (self.THINKING, self.STARTED):
            return text, ""
        if self.state == self.DONE_EATING:
            return "", text.lstrip()
        return "", text


# -- tool calls (Go-template models) -------------------------------------------
class ToolCallParser:
    """Finds tool calls in output, the way Ollama's ``tools`` package does.

    ``tag`` starts tool calls; ``{`` (no tag in the template) means a JSON
    object at the very start of the output. A call is recognised by a known
    tool name followed by a JSON object whose keys are that tool's
    parameters (and include the required ones), wherever it is nested.
    """

    LOOKING, CALLING, DONE = range(3)

    def __init__(self, tools: Sequence[Mapping[str, Any]], tag: str = "{") -> None:
        self.tag = tag or "{"
        self.tools = [t.get("function") or {} for t in tools]
        self.state = self.LOOKING
        self.buffer = ""
        self.count = 0

    def add(self, text: str) -> tuple[list[dict[str, Any]], str]:
        """Returns (complete tool calls, content) for this piece."""
        if self.state == self.DONE:
            return [], text
        self.buffer += text
        content = ""
        if self.state == self.LOOKING:
            at, found = self._find_tag()
            if at < 0:
                content, self.buffer = self.buffer, ""
            else:
                content, self.buffer = self.buffer[:at], self.buffer[at:]
            if self.tag in ("{", "[") and content.strip():
                self.state = self.DONE
                rest, self.buffer = content + self.buffer, ""
                return [], rest
            if not found:
                return [], content
            self.state = self.CALLING
        calls: list[dict[str, Any]] = []
        while True:
            call = self._parse_call()
            if call is None:
                break
            calls.append(call)
        if self._closed():
            self.state = self.DONE
            content, self.buffer = self.buffer, ""
        return calls, content

    def content(self) -> str:
        """Held-back text to send at the end: only a bare ``{``/``[`` that was no tool call."""
        if self.count > 0:
            return ""
        if self.tag in ("{", "["):
            return self.buffer
        return ""

    def _find_tag(self) -> tuple[int, bool]:
        at = self.buffer.find(self.tag)
        if at >= 0:
            return at, True
        keep = _overlap(self.buffer, self.tag)
        return (len(self.buffer) - keep, False) if keep else (-1, False)

    def _find_tool(self) -> tuple[Mapping[str, Any] | None, int]:
        buf = self.buffer
        if not buf:
            return None, 0
        names = [str(t.get("name") or "") for t in self.tools]
        longest = max((len(n) for n in names), default=0)
        for i in range(1, min(len(buf), longest) + 1):
            tail = buf[-i:]
            if any(len(tail) < len(n) and n.startswith(tail) for n in names):
                return None, 0  # may be the start of a longer name: wait
        best: Mapping[str, Any] | None = None
        start = end = -1
        for tool, name in zip(self.tools, names):
            if not name:
                continue
            pos = buf.find(name)
            if pos < 0:
                continue
            if best is not None and (pos > start or (pos == start and len(name) <= end - start)):
                continue
            best, start, end = tool, pos, pos + len(name)
        return (best, end) if best is not None else (None, 0)

    def _find_arguments(self, tool: Mapping[str, Any]) -> tuple[Any, int]:
        buf = self.buffer
        depth = 0
        start = -1
        end = -1
        for i, ch in enumerate(buf):
            if ch == "{":
                depth += 1
                if start < 0:
                    start = i
            elif ch == "}" and start >= 0:
                depth -= 1
                if depth == 0:
                    end = i + 1
                    break
        if start < 0 or end < 0:
            return None, 0
        try:
            data = json.loads(buf[start:end], object_pairs_hook=OrderedMap)
        except json.JSONDecodeError:
            return None, 0
        params = tool.get("parameters") or {}
        props = params.get("properties") or {}
        required = params.get("required") or []

        def find(obj: Any) -> Any:
            if isinstance(obj, dict):
                if all(k in props for k in obj) and all(r in obj for r in required):
                    return obj
                for value in obj.values():
                    found = find(value)
                    if found is not None:
                        return found
            elif isinstance(obj, list):
                for item in obj:
                    found = find(item)
                    if found is not None:
                        return found
            return None

        found = find(data)
        return (found, end) if found is not None else (None, 0)

    def _parse_call(self) -> dict[str, Any] | None:
        tool, end = self._find_tool()
        if tool is None:
            return None
        args, args_end = self._find_arguments(tool)
        if args is None:
            return None
        call = tool_call(str(tool.get("name") or ""), args, self.count, new_call_id())
        self.count += 1
        self.buffer = self.buffer[max(end, args_end):]
        return call

    def _closed(self) -> bool:
        pairs = {"{": ("{", "}"), "[": ("[", "]")}
        if self.tag not in pairs:
            return False
        opening, closing = pairs[self.tag]
        depth = 0
        for ch in self.buffer:
            if ch == opening:
                depth += 1
            elif ch == closing:
                depth -= 1
                if depth == 0:
                    return True
        return False


class GoOutputParser:
    """Ollama's output handling for TEMPLATE models: thinking first, then tool calls."""

    def __init__(self, *, thinking_tags: tuple[str, str] = ("", ""), think: bool = False, prompt: str = "",
                 tools: Sequence[Mapping[str, Any]] = (), tool_tag: str = "{") -> None:
        opening, closing = thinking_tags
        self.thinking: ThinkingParser | None = None
        if think and opening and closing:
            self.thinking = ThinkingParser(opening, closing)
            at = prompt.rfind(opening)
            if at >= 0 and closing not in prompt[at + len(opening):]:
                self.thinking.add(opening)  # the prompt left a thinking block open: output starts inside it
        self.tools = ToolCallParser(tools, tool_tag) if tools else None

    def feed(self, text: str) -> ParsedDelta:
        thinking, content = self.thinking.add(text) if self.thinking else ("", text)
        return self._tools(thinking, content)

    def _tools(self, thinking: str, content: str) -> ParsedDelta:
        if self.tools is None or not content:
            return ParsedDelta(content, thinking)
        calls, content = self.tools.add(content)
        return ParsedDelta(content, thinking, calls)

    def finish(self) -> ParsedDelta:
        thinking, content = self.thinking.flush() if self.thinking else ("", "")
        delta = self._tools(thinking, content)
        if self.tools is not None:
            delta.content += self.tools.content()
        return delta


# -- Jinja (llama.cpp common) --------------------------------------------------
class JinjaOutputParser:
    """Re-parses the whole output with llama.cpp's chat parser and diffs the results.

    Re-parsing costs time linear in the output so far. Once plain content is
    streaming (the last two parses each grew the content by exactly the new
    piece, no tool call open), a piece containing no first character of any
    marker the format uses (thinking tags, tool-call triggers, preserved
    tokens, brackets) is passed straight through; any other piece re-parses
    everything, so markers are never missed. Trailing white space is held
    back until more text follows, because the final parse may trim it.
    """

    def __init__(self, chat_params: Mapping[str, Any], tools: bool = False) -> None:
        self.params = dict(chat_params)
        self.text = ""
        self.content = ""  # content sent so far
        self.thinking = ""  # thinking sent so far
        self.raw_content = ""  # content as the parser last saw it, trailing white space included
        self.calls_sent = 0
        self.plain_streak = 0
        self.marker_chars = _marker_chars(chat_params, tools)

    def _parse(self, partial: bool) -> dict[str, Any] | None:
        from pyllama import _native

        try:
            return _native.parse_chat_output(self.text, self.params, partial=partial)
        except ValueError:
            return None

    @staticmethod
    def _advance(sent: str, now: str, final: bool) -> tuple[str, str]:
        """(delta, new sent text) for a field that was ``sent`` and now parses as ``now``."""
        view = now if final else now.rstrip()
        if view.startswith(sent):
            return view[len(sent):], view
        if final:
            common = _common_prefix(sent, view)
            return view[common:], view
        return "", sent

    def _diff(self, result: Mapping[str, Any], final: bool) -> ParsedDelta:
        delta = ParsedDelta()
        self.raw_content = str(result.get("content") or "")
        delta.content, self.content = self._advance(self.content, self.raw_content, final)
        # thinking starts at its first non-space character, as Ollama's thinking parser has it
        thinking = str(result.get("reasoning_content") or "").lstrip()
        delta.thinking, self.thinking = self._advance(self.thinking, thinking, final)
        calls = list(result.get("tool_calls") or [])
        ready = len(calls) if final else max(len(calls) - 1, 0)  # the last one may still grow
        for call in calls[self.calls_sent:ready]:
            delta.tool_calls.append(tool_call(str(call.get("name") or ""), call.get("arguments") or "{}",
                                              self.calls_sent, str(call.get("id") or "") or new_call_id()))
            self.calls_sent += 1
        return delta

    def feed(self, text: str) -> ParsedDelta:
        self.text += text
        if self.plain_streak >= 2 and not self.marker_chars.intersection(text):
            self.raw_content += text
            piece, self.content = self._advance(self.content, self.raw_content, False)
            return ParsedDelta(content=piece)
        before = self.raw_content
        result = self._parse(partial=True)
        if result is None:
            self.plain_streak = 0
            return ParsedDelta()
        delta = self._diff(result, final=False)
        plain = not result.get("tool_calls") and self.raw_content == before + text and not delta.thinking
        self.plain_streak = self.plain_streak + 1 if plain else 0
        return delta

    def finish(self) -> ParsedDelta:
        result = self._parse(partial=False) or self._parse(partial=True)
        if result is None:
            delta = ParsedDelta()
            if self.text.startswith(self.content):
                delta.content = self.text[len(self.content):]
            return delta
        return self._diff(result, final=True)


def _marker_chars(params: Mapping[str, Any], tools: bool) -> frozenset[str]:
    """First characters of every text that can switch llama.cpp's parser out of plain content."""
    markers: list[str] = [str(t) for t in params.get("preserved_tokens") or []]
    markers += [str(t.get("value") or "") for t in params.get("grammar_triggers") or [] if isinstance(t, Mapping)]
    markers += [str(params.get("thinking_start_tag") or "")]
    markers += [str(t) for t in params.get("thinking_end_tags") or []]
    markers += [str(t) for t in params.get("additional_stops") or []]
    chars = {m.strip()[0] for m in markers if m.strip()}
    chars |= {"<", "["}  # the openers of nearly every special token
    if tools:
        chars |= {"{", "`", ">"}  # bare JSON calls, fenced calls, functionary's >>>
    return frozenset(chars)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
