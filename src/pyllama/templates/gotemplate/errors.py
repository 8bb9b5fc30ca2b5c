"""Exceptions raised by the Go text/template engine.

Messages follow Go's shape (``template: :LINE:COL: ...``) so a user who
knows Ollama's errors recognises them, and always name the position.
"""

from __future__ import annotations


class TemplateError(Exception):
    """Base class: anything wrong with a template, at parse or render time."""


class TemplateSyntaxError(TemplateError, ValueError):
    """The template text does not parse (bad action, unknown function, ...)."""

    def __init__(self, message: str, line: int, col: int, name: str = "") -> None:
        self.line = line
        self.col = col
        self.name = name
        self.detail = message
        super().__init__(f"template: {name}:{line}:{col}: {message}")


class TemplateExecError(TemplateError, RuntimeError):
    """Rendering failed (wrong types for a function, bad index, ...)."""

    def __init__(self, message: str, line: int, col: int, context: str = "", name: str = "") -> None:
        self.line = line
        self.col = col
        where = f" executing \"{name}\" at <{context}>:" if context else ""
        super().__init__(f"template: {name}:{line}:{col}:{where} {message}")
