"""Turning token pieces into text that is safe to send.

Two kinds of text are held back: the bytes of a character whose encoding is
not complete yet (a token may end in the middle of one), and a tail that
could still grow into a stop string. A stop string is found even when it is
spread over several tokens, and it is never sent.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence


def partial_stop_length(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of a
    stop string (those characters must wait for the next token)."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best


def find_stop(text: str, stops: Sequence[str]) -> tuple[int, str]:
    """Index of the earliest stop string in ``text`` and that string, or (-1, "")."""
    found, which = -1, ""
    for stop in stops:
        at = text.find(stop)
        if at >= 0 and (found < 0 or at < found):
            found, which = at, stop
    return found, which


class TextStream:
    """Accumulates token pieces; ``push`` returns what may be sent now.

    After a stop string matched, ``stopped`` is True, ``matched`` is that
    string (clients such as Anthropic's report it) and the stream accepts
    nothing more. ``finish`` returns whatever was held back, except the
    bytes of a character the generation stopped in the middle of: those are
    dropped, as Ollama drops them (a lone U+FFFD helps nobody).
    """

    __slots__ = ("_decoder", "_held", "_stops", "matched", "stopped")

    def __init__(self, stops: Sequence[str] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""
        self._stops = tuple(s for s in stops if s)
        self.stopped = False
        self.matched = ""

    def push(self, piece: bytes) -> str:
        """Add one token's bytes; return the text that can no longer change."""
        if self.stopped:
            return ""
        new = self._decoder.decode(piece, False)
        if not self._stops:
            return new
        text = self._held + new
        # Held text is shorter than any stop string, so ``text`` is short.
        at, self.matched = find_stop(text, self._stops)
        if at >= 0:
            self.stopped = True
            self._held = ""
            return text[:at]
        keep = partial_stop_length(text, self._stops)
        self._held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep]

    def finish(self) -> str:
        """End of generation (EOG, length, shift refused): release the rest."""
        if self.stopped:
            return ""
        self._decoder.reset()  # an incomplete last character is dropped, not replaced
        text, self._held = self._held, ""
        return text
