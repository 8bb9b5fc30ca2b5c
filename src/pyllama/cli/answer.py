"""Printing a streamed answer the way `ollama run` does: thinking between
``Thinking...`` and ``...done thinking.``, words wrapped at the terminal's
edge, tool calls the CLI cannot run named, and the ``--verbose`` timings."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.cells import cell_len

GREY_BOLD, RESET, GREY = "\x1b[38;5;245m\x1b[1m", "\x1b[0m", "\x1b[38;5;245m"


def go_duration(ns: int) -> str:
    """A nanosecond count as Go prints a time.Duration: 1.234s, 56.7ms, 2m3.5s."""
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(int(ns))

    def frac(value: int, unit: int) -> str:
        whole, part = divmod(value, unit)
        digits = str(part).rjust(len(str(unit)) - 1, "0").rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{frac(ns, 1_000)}\u00b5s"
    if ns < 1_000_000_000:
        return f"{sign}{frac(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    head = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    return f"{sign}{head}{frac(rest, 10**9)}s"


def print_stats(final: dict[str, Any], out: TextIO | None = None) -> None:
    """The ``--verbose`` / ``/set verbose`` block, on stderr; zero values are left out."""
    out = out or sys.stderr
    rows: list[tuple[str, str]] = []
    for key, label in (("total_duration", "total duration"), ("load_duration", "load duration")):
        if final.get(key, 0) > 0:
            rows.append((label, go_duration(final[key])))
    for prefix, label in (("prompt_eval", "prompt eval"), ("eval", "eval")):
        count, duration = final.get(f"{prefix}_count", 0), final.get(f"{prefix}_duration", 0)
        if count > 0:
            rows.append((f"{label} count", f"{count} token(s)"))
        if duration > 0:
            rows.append((f"{label} duration", go_duration(duration)))
            rows.append((f"{label} rate", f"{count / (duration / 1e9):.2f} tokens/s"))
    for label, value in rows:
        print(f"{label + ':':<22}{value}", file=out)


def terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return 80


@dataclass
class WordWrap:
    """Writes text as it streams and moves a word that would cross the right
    margin (five columns short of the edge) onto the next line."""

    out: TextIO
    width: int
    column: int = 0
    word: str = ""

    def write(self, text: str) -> None:
        if self.width < 10:
            self.out.write(text)
            return
        for ch in text:
            if ch in "\r\n":
                self.out.write(ch)
                self.column, self.word = 0, ""
                continue
            size = cell_len(ch)
            if self.column + size > self.width - 5:
                self._break(ch, size)
                continue
            self.out.write(ch)
            self.column += size
            self.word = "" if ch in " \t" or size >= 2 else self.word + ch

    def _break(self, ch: str, size: int) -> None:
        if ch in " \t":
            self.out.write("\n")
            self.column, self.word = 0, ""
            return
        word = self.word if cell_len(self.word) <= self.width - 10 else ""
        if word:  # take the word back off this line and start the next one with it
            self.out.write(f"\x1b[{cell_len(word)}D\x1b[K")
        self.out.write(f"\n{word}{ch}")
        self.column = cell_len(word) + size
        self.word = word + ch if size < 2 else ""


@dataclass
class AnswerPrinter:
    """Prints one streamed answer; remembers its text for the conversation."""

    out: TextIO
    wrap: bool
    hide_thinking: bool = False
    content: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    _in_thinking: bool = False

    def __post_init__(self) -> None:
        self.color = self.out.isatty()
        self._writer: WordWrap | TextIO = WordWrap(self.out, terminal_width(self.out)) if self.wrap else self.out

    def _restart_wrap(self) -> None:
        if isinstance(self._writer, WordWrap):
            self._writer = WordWrap(self.out, self._writer.width)

    def feed(self, content: str, thinking: str, tool_calls: Iterable[dict[str, Any]] = ()) -> None:
        calls = list(tool_calls)
        if thinking and not self.hide_thinking:
            if not self._in_thinking:
                self.out.write(f"{GREY_BOLD}Thinking...\n{RESET}{GREY}" if self.color else "Thinking...\n")
                self._in_thinking = True
            self.thinking.append(thinking)
            self._writer.write(thinking)
        if self._in_thinking and (content or calls):
            if not "".join(self.thinking).endswith("\n"):
                self.out.write("\n")
            self.out.write(f"{GREY_BOLD}...done thinking.\n\n{RESET}" if self.color else "...done thinking.\n\n")
            self._in_thinking = False
            self._restart_wrap()
        if content:
            self.content.append(content)
            self._writer.write(content)
        for i, call in enumerate(calls):
            function = call.get("function") or {}
            self.out.write(("\n" if i else "") + f"  Model called a non-existent function '{function.get('name', '')}()' "
                           f"with arguments: {json.dumps(function.get('arguments', {}), separators=(',', ':'))}")
        self.out.flush()

    @property
    def text(self) -> str:
        return "".join(self.content)


def stream_answer(chunks: Iterable[dict[str, Any]], printer: AnswerPrinter) -> dict[str, Any]:
    """Feed /api/chat or /api/generate chunks to ``printer``; returns the final chunk."""
    final: dict[str, Any] = {}
    for chunk in chunks:
        message = chunk.get("message")
        if isinstance(message, dict):
            printer.feed(message.get("content") or "", message.get("thinking") or "", message.get("tool_calls") or ())
        else:
            printer.feed(chunk.get("response") or "", chunk.get("thinking") or "", chunk.get("tool_calls") or ())
        if chunk.get("done"):
            final = chunk
    return final
