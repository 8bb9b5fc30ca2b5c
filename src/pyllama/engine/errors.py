"""Exceptions the engine raises to its callers."""

from __future__ import annotations


class EngineError(RuntimeError):
    """A request failed inside the engine; ``kind`` is the Failure kind."""

    def __init__(self, message: str, kind: str = "decode") -> None:
        super().__init__(message)
        self.kind = kind


class InvalidRequestError(ValueError):
    """The request cannot run as given (empty prompt, bad option value, too
    long with truncation off). Raised by ``submit`` on the caller's thread,
    before anything reaches the loop."""


class EngineClosedError(RuntimeError):
    """``submit`` after ``close()``, or before ``start()``."""
