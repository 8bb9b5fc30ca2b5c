"""Exceptions the store raises, each carrying the HTTP status it maps to.

The server turns them into Ollama's ``{"error": "..."}`` bodies, so the
message text is what a client sees and must match Ollama's wording.
"""

from __future__ import annotations

MAX_MESSAGE = 1024  # characters: messages quote names and values a client sent, which may be huge


def capped(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` cut to ``limit`` characters (saying how long it was), so an error never echoes
    a megabyte-long name or value back whole."""
    return message if len(message) <= limit else f"{message[:limit]}... ({len(message)} characters)"


class StoreError(Exception):
    """Base class: a failure with a message meant for the API client (capped, see ``capped``)."""

    status_code: int = 500

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(capped(message))
        if status_code is not None:
            self.status_code = status_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidRequest(StoreError):
    """The request is malformed (bad name, bad digest, bad parameter)."""

    status_code = 400


class NotFound(StoreError):
    """A model or blob the request names does not exist."""

    status_code = 404


class RegistryError(StoreError):
    """A registry answered with an error or could not be reached."""

    status_code = 500
