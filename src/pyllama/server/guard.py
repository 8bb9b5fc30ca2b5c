"""Host-header allow-list and CORS, as Ollama applies them, in front of the
whole app (unknown paths included).

A browser page on another site must not be able to drive the local API:
DNS rebinding is stopped by checking the Host header when we listen on
loopback, and cross-origin calls by the Origin allow-list. Both refusals
are a 403 with an empty body.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from functools import lru_cache
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_ORIGINS: tuple[str, ...] = tuple(
    f"{scheme}://{host}{port}"
    for host in ("localhost", "127.0.0.1", "0.0.0.0")
    for scheme in ("http", "https")
    for port in ("", ":*")
) + ("app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*")

ALLOWED_HEADERS = ("Authorization, Content-Type, User-Agent, Accept, X-Requested-With, OpenAI-Beta, "
                   "x-stainless-arch, x-stainless-lang, x-stainless-os, x-stainless-package-version, "
                   "x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, "
                   "x-stainless-async, x-stainless-helper-method, x-stainless-poll-helper, "
                   "x-stainless-custom-poll-interval, x-stainless-timeout")
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
HOST_SUFFIXES = (".localhost", ".local", ".internal")


def origin_matcher(patterns: Iterable[str]) -> re.Pattern[str]:
    """One regex for all origin patterns; `*` matches any run of characters."""
    parts = ["^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$" for pattern in patterns]
    return re.compile("|".join(parts) or "(?!)")


@lru_cache(maxsize=1)
def _local_addresses() -> frozenset[str]:
    names = {socket.gethostname()}
    addrs: set[str] = set()
    for name in names:
        try:
            addrs.update(info[4][0] for info in socket.getaddrinfo(name, None))
        except OSError:
            pass
    return frozenset(addrs)


def host_allowed(host_header: str) -> bool:
    """Ollama's rule for the Host header on a loopback listener."""
    host = host_header.strip()
    if host.startswith("["):  # [::1]:port
        host = host[1:host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.lower()
    if host in ("", "localhost") or host == socket.gethostname().lower() or host.endswith(HOST_SUFFIXES):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_unspecified or str(ip) in _local_addresses()


def is_loopback_bind(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


async def _refuse(send: Send, status: int = 403, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", b"0"), *(headers or [])]})
    await send({"type": "http.response.body", "body": b""})


class RequestGuard:
    """ASGI wrapper: Host check (loopback listeners only), then CORS."""

    def __init__(self, app: ASGIApp, *, bind_host: str, origins: Iterable[str]) -> None:
        self.app = app
        self.check_host = is_loopback_bind(bind_host)
        self.origins = origin_matcher([*origins, *DEFAULT_ORIGINS])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        if self.check_host and not host_allowed(headers.get("host", "")):
            await _refuse(send)
            return
        origin = headers.get("origin")
        if origin is None:
            if scope["method"] == "OPTIONS":
                await _refuse(send, 204)
                return
            await self.app(scope, receive, send)
            return
        if not self.origins.match(origin):
            await _refuse(send)
            return
        cors = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
        if scope["method"] == "OPTIONS":
            await _refuse(send, 204, cors + [
                (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
                (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                (b"access-control-max-age", b"43200"),
            ])
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *cors]
            await send(message)

        await self.app(scope, receive, send_with_cors)
