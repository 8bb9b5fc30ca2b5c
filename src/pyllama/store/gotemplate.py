"""A syntax check for Go text/template strings stored in TEMPLATE layers.

Full rendering lives with the prompt templates; the store only needs to
reject templates Go would fail to parse (unclosed actions, unbalanced
``{{ end }}``), so that a broken TEMPLATE is a 400 at create time rather
than a failure at the first chat request.
"""

from __future__ import annotations

import re

_BLOCK_OPENERS = ("if", "range", "with", "block", "define")
_ACTION_WORD = re.compile(r"^-?\s*(/\*.*?\*/\s*)?([A-Za-z]+)?", re.DOTALL)


def check_go_template(text: str) -> None:
    """Raise ValueError (Go-like wording) if ``text`` is not a parsable template."""
    depth: list[tuple[str, int]] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            break
        end = _find_close(text, start + 2)
        line = text.count("\n", 0, start) + 1
        if end < 0:
            raise ValueError(f"template: :{line}: unclosed action")
        body = text[start + 2 : end].strip()
        if body.startswith("-"):
            body = body[1:].strip()
        if body.endswith("-"):
            body = body[:-1].strip()
        match = _ACTION_WORD.match(body)
        word = match.group(2) if match and match.group(2) else ""
        if body.startswith("/*"):
            word = ""
        if word in _BLOCK_OPENERS:
            depth.append((word, line))
        elif word == "else":
            if not depth or depth[-1][0] not in ("if", "range", "with"):
                raise ValueError(f"template: :{line}: unexpected {{{{else}}}}")
        elif word == "end":
            if not depth:
                raise ValueError(f"template: :{line}: unexpected {{{{end}}}}")
            depth.pop()
        pos = end + 2
    if depth:
        word, line = depth[-1]
        raise ValueError(f"template: :{line}: unexpected EOF in {word}")


def _find_close(text: str, pos: int) -> int:
    """Index of the ``}}`` closing an action, skipping quoted strings inside it."""
    i = pos
    while i < len(text) - 1:
        ch = text[i]
        if ch in "\"`'":
            closing = text.find(ch, i + 1)
            while ch == '"' and closing > 0 and text[closing - 1] == "\\" and text[closing - 2] != "\\":
                closing = text.find(ch, closing + 1)
            if closing < 0:
                return -1
            i = closing + 1
            continue
        if text.startswith("}}", i):
            return i
        i += 1
    return -1
