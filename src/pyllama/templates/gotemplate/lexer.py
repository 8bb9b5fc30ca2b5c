"""Tokenizer for Go text/template source.

Splits the text into literal text and ``{{ ... }}`` actions, applies the
``{{-`` / ``-}}`` trim markers to neighbouring text, drops comments, and
tokenizes each action's contents. Positions are character offsets into the
source so the parser can report ``line:col``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, auto

from pyllama.templates.gotemplate.errors import TemplateSyntaxError

LEFT_DELIM = "{{"
RIGHT_DELIM = "}}"
_TRIM_SPACE = " \t\r\n"
KEYWORDS = frozenset({"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"})

_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?"
    r"|0[bB][01_]+|0[oO][0-7_]+"
    r"|(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9_]+)?)i?"
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Tok(Enum):
    TEXT = auto()
    LEFT = auto()  # start of an action
    RIGHT = auto()  # end of an action
    FIELD = auto()  # .Name
    VARIABLE = auto()  # $ or $name
    IDENT = auto()  # function name
    KEYWORD = auto()
    STRING = auto()  # already unquoted
    CHAR = auto()  # character constant, value is the rune
    NUMBER = auto()
    BOOL = auto()
    NIL = auto()
    DOT = auto()
    DECLARE = auto()  # :=
    ASSIGN = auto()  # =
    PIPE = auto()
    LPAREN = auto()
    RPAREN = auto()
    COMMA = auto()


@dataclass(frozen=True, slots=True)
class Token:
    kind: Tok
    value: str
    pos: int
    space_before: bool = False  # separated from the previous token by white space


def line_col(source: str, pos: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = source.count("\n", 0, pos) + 1
    start = source.rfind("\n", 0, pos) + 1
    return line, pos - start + 1


def _fail(source: str, pos: int, message: str) -> TemplateSyntaxError:
    line, col = line_col(source, pos)
    return TemplateSyntaxError(message, line, col)


def tokenize(source: str) -> list[Token]:
    """The token stream of a whole template (text, actions, trim applied)."""
    tokens: list[Token] = []
    pos = 0
    trim_next_text = False
    n = len(source)
    while pos <= n:
        start = source.find(LEFT_DELIM, pos)
        text_end = n if start < 0 else start
        text = source[pos:text_end]
        action_pos = start
        left_trim = False
        if start >= 0 and source.startswith("-", start + 2) and start + 3 < n and source[start + 3] in _TRIM_SPACE:
            left_trim = True
        if trim_next_text:
            text = text.lstrip(_TRIM_SPACE)
        if left_trim:
            text = text.rstrip(_TRIM_SPACE)
        if text:
            tokens.append(Token(Tok.TEXT, text, pos))
        if start < 0:
            break
        inner = start + 2 + (2 if left_trim else 0)
        if left_trim:
            while inner < n and source[inner] in _TRIM_SPACE:
                inner += 1
        if source.startswith("/*", inner):
            pos, trim_next_text = _skip_comment(source, action_pos, inner)
            continue
        tokens.append(Token(Tok.LEFT, "{{", action_pos))
        pos, trim_next_text = _lex_action(source, inner, tokens)
    return tokens


def _skip_comment(source: str, action_pos: int, pos: int) -> tuple[int, bool]:
    end = source.find("*/", pos + 2)
    if end < 0:
        raise _fail(source, action_pos, "unclosed comment")
    after = end + 2
    if source.startswith(RIGHT_DELIM, after):
        return after + 2, False
    stripped = after
    while stripped < len(source) and source[stripped] in _TRIM_SPACE:
        stripped += 1
    if stripped > after and source.startswith("-" + RIGHT_DELIM, stripped):
        return stripped + 3, True
    raise _fail(source, action_pos, "comment ends before closing delimiter")


def _right_delim_at(source: str, pos: int) -> tuple[int, bool] | None:
    """If an action closes at ``pos`` (after optional space), its end and trim flag."""
    if source.startswith(RIGHT_DELIM, pos):
        return pos + 2, False
    if pos < len(source) and source[pos] in _TRIM_SPACE:
        p = pos
        while p < len(source) and source[p] in _TRIM_SPACE:
            p += 1
        if source.startswith("-" + RIGHT_DELIM, p):
            return p + 3, True
    return None


def _lex_action(source: str, pos: int, tokens: list[Token]) -> tuple[int, bool]:
    """Tokenize one action starting at ``pos``; returns the offset after it and right-trim."""
    n = len(source)
    space = True
    depth = 0
    while True:
        closing = _right_delim_at(source, pos)
        if closing is not None:
            if depth:
                raise _fail(source, pos, "unclosed left paren")
            tokens.append(Token(Tok.RIGHT, "}}", pos))
            return closing
        if pos >= n:
            raise _fail(source, pos, "unclosed action")
        ch = source[pos]
        if ch in _TRIM_SPACE:
            while pos < n and source[pos] in _TRIM_SPACE:
                pos += 1
            space = True
            continue
        start = pos
        if ch == '"':
            value, pos = _quoted(source, pos)
            tokens.append(Token(Tok.STRING, value, start, space))
        elif ch == "`":
            end = source.find("`", pos + 1)
            if end < 0:
                raise _fail(source, pos, "unterminated raw quoted string")
            tokens.append(Token(Tok.STRING, source[pos + 1 : end], start, space))
            pos = end + 1
        elif ch == "'":
            value, pos = _char(source, pos)
            tokens.append(Token(Tok.CHAR, value, start, space))
        elif ch == ":":
            if not source.startswith(":=", pos):
                raise _fail(source, pos, "expected :=")
            tokens.append(Token(Tok.DECLARE, ":=", start, space))
            pos += 2
        elif ch == "=":
            tokens.append(Token(Tok.ASSIGN, "=", start, space))
            pos += 1
        elif ch == "|":
            tokens.append(Token(Tok.PIPE, "|", start, space))
            pos += 1
        elif ch == ",":
            tokens.append(Token(Tok.COMMA, ",", start, space))
            pos += 1
        elif ch == "(":
            depth += 1
            tokens.append(Token(Tok.LPAREN, "(", start, space))
            pos += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise _fail(source, pos, "unexpected right paren")
            tokens.append(Token(Tok.RPAREN, ")", start, space))
            pos += 1
        elif ch == "$":
            match = _IDENT.match(source, pos + 1)
            end = match.end() if match else pos + 1
            tokens.append(Token(Tok.VARIABLE, source[pos:end], start, space))
            pos = end
        elif ch == "." and not (pos + 1 < n and source[pos + 1].isdigit()):
            match = _IDENT.match(source, pos + 1)
            if match:
                tokens.append(Token(Tok.FIELD, match.group(), start, space))
                pos = match.end()
            else:
                tokens.append(Token(Tok.DOT, ".", start, space))
                pos += 1
        elif ch.isdigit() or ch in "+-.":
            match = _NUMBER.match(source, pos)
            if not match or match.end() == pos or (ch in "+-" and match.end() == pos + 1):
                raise _fail(source, pos, f"bad number syntax: {source[pos:pos + 1]!r}")
            end = match.end()
            if end < n and (source[end].isalnum() or source[end] == "_"):
                raise _fail(source, pos, f"bad number syntax: {source[pos:end + 1]!r}")
            tokens.append(Token(Tok.NUMBER, match.group(), start, space))
            pos = end
        elif ch.isalpha() or ch == "_":
            match = _IDENT.match(source, pos)
            assert match is not None
            word = match.group()
            if word in KEYWORDS:
                kind = Tok.KEYWORD
            elif word in ("true", "false"):
                kind = Tok.BOOL
            elif word == "nil":
                kind = Tok.NIL
            else:
                kind = Tok.IDENT
            tokens.append(Token(kind, word, start, space))
            pos = match.end()
        else:
            raise _fail(source, pos, f"unexpected {ch!r} in command")
        space = False


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"'}


def _unescape(source: str, pos: int, quote: str) -> tuple[str, int]:
    """One (possibly escaped) character of a quoted literal at ``pos``."""
    ch = source[pos]
    if ch != "\\":
        return ch, pos + 1
    esc = source[pos + 1 : pos + 2]
    if esc in _ESCAPES and (esc != "'" or quote == "'") and (esc != '"' or quote == '"'):
        return _ESCAPES[esc], pos + 2
    widths = {"x": 2, "u": 4, "U": 8}
    if esc in widths:
        digits = source[pos + 2 : pos + 2 + widths[esc]]
        if len(digits) == widths[esc] and all(c in "0123456789abcdefABCDEF" for c in digits):
            return chr(int(digits, 16)), pos + 2 + widths[esc]
    if esc and esc in "01234567":
        digits = source[pos + 1 : pos + 4]
        if len(digits) == 3 and all(c in "01234567" for c in digits):
            return chr(int(digits, 8)), pos + 4
    raise _fail(source, pos, "invalid syntax in quoted string")


def _quoted(source: str, pos: int) -> tuple[str, int]:
    out: list[str] = []
    i = pos + 1
    while True:
        if i >= len(source) or source[i] == "\n":
            raise _fail(source, pos, "unterminated quoted string")
        if source[i] == '"':
            return "".join(out), i + 1
        ch, i = _unescape(source, i, '"')
        out.append(ch)


def _char(source: str, pos: int) -> tuple[str, int]:
    if pos + 1 >= len(source) or source[pos + 1] in "\n'":
        raise _fail(source, pos, "unterminated character constant")
    ch, i = _unescape(source, pos + 1, "'")
    if i >= len(source) or source[i] != "'":
        raise _fail(source, pos, "unterminated character constant")
    return ch, i + 1
