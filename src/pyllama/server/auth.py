"""Optional API keys: ``PYLLAMA_API_KEYS`` (comma-separated) and/or
``PYLLAMA_API_KEYS_FILE`` (one key per line, re-read on SIGHUP).

Ollama has no authentication, so exposed instances end up serving anyone;
with keys set, every route but ``GET/HEAD /`` and ``/api/version`` (what
health checks and ``ollama``-style "is it running" probes call) and the web
chat's static files under ``/ui/`` (the page then asks for a key) needs
``Authorization: Bearer KEY`` or Anthropic's ``x-api-key: KEY``. The check is
an app-wide Litestar guard, so a refusal is a 401 in the envelope of the
API family that was called (each router's ``handlers(envelope)``). Keys are
compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

from pyllama.config import Config
from pyllama.server.guard import is_loopback_bind

log = logging.getLogger("pyllama.server")

PUBLIC_PATHS = frozenset({"/", "/api/version"})
MISSING = "unauthorized: this server needs an API key (send Authorization: Bearer KEY)"
INVALID = "unauthorized: invalid API key"


class ApiKeysError(RuntimeError):
    """The keys file cannot be read at start."""


def read_keys_file(path: str) -> list[str]:
    """One key per line; blank lines and ``#`` comments skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ApiKeysError(f"cannot read PYLLAMA_API_KEYS_FILE {path}: {exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


class ApiKeys:
    """The accepted keys. ``enabled`` once either setting is given: a keys
    file with no keys in it refuses every request rather than opening up."""

    def __init__(self, inline: Iterable[str] = (), file: str = "") -> None:
        self._inline = [k.encode() for k in inline]
        self.file = file
        self.enabled = bool(self._inline or file)
        self._keys: list[bytes] = list(self._inline)
        self._watching = False
        if file:
            self._load()

    @classmethod
    def from_config(cls, config: Config) -> ApiKeys:
        return cls(config.api_keys, config.api_keys_file)

    def _load(self) -> None:
        from_file = [k.encode() for k in read_keys_file(self.file)]
        self._keys = self._inline + from_file
        if not self._keys:
            log.warning("PYLLAMA_API_KEYS_FILE %s holds no keys: every request will be refused", self.file)

    def reload(self) -> None:
        """Re-read the keys file (SIGHUP); a file that cannot be read keeps the keys in use."""
        try:
            self._load()
        except ApiKeysError as exc:
            log.error("%s; keeping the keys already loaded", exc)
            return
        log.warning("API keys reloaded from %s (%d keys)", self.file, len(self._keys))

    def accepts(self, presented: str) -> bool:
        """Whether ``presented`` is one of the keys; compares against every key, in constant time each."""
        candidate = presented.encode()
        found = False
        for key in self._keys:
            found |= hmac.compare_digest(candidate, key)
        return found

    def guard(self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        """Litestar guard: raise 401 unless the request carries a valid key. Handlers marked
        ``opt={"public": True}`` (the web chat's static files: no data, and the page must
        load before it can ask for a key) are open too."""
        if connection.scope.get("path_template", connection.url.path) in PUBLIC_PATHS or handler.opt.get("public"):
            return
        presented = presented_keys(connection.headers.get("authorization"), connection.headers.get("x-api-key"))
        if not presented:
            raise NotAuthorizedException(MISSING)
        if not any([self.accepts(key) for key in presented]):  # a list: check both, whichever matched
            raise NotAuthorizedException(INVALID)

    def watch_sighup(self) -> None:
        """From the server's event loop: SIGHUP re-reads the keys file (when there is one)."""
        if not self.file:
            return
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
            self._watching = True
        except (NotImplementedError, RuntimeError, ValueError) as exc:  # not the main thread, or Windows
            log.warning("cannot re-read PYLLAMA_API_KEYS_FILE on SIGHUP here: %s", exc)

    def unwatch_sighup(self) -> None:
        if self._watching:
            self._watching = False
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)


def presented_keys(authorization: str | None, x_api_key: str | None) -> list[str]:
    """The keys a request offers: a Bearer token and/or an ``x-api-key``."""
    keys = []
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            keys.append(token.strip())
    if x_api_key and x_api_key.strip():
        keys.append(x_api_key.strip())
    return keys


def warn_if_exposed(config: Config, keys: ApiKeys) -> None:
    """One clear warning when the API listens beyond this machine with no keys."""
    if not keys.enabled and not is_loopback_bind(config.host):
        log.warning("pyllama is listening on %s without API keys: anyone who can reach this address can use "
                    "and delete your models. Set PYLLAMA_API_KEYS or PYLLAMA_API_KEYS_FILE to require a key.",
                    config.host)
