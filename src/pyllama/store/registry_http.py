"""Registry HTTP: one client per host and model name, Ollama's signed bearer-token flow.

``registry.RegistryClient`` builds pull and push on this.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import platform
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from pyllama.store.errors import RegistryError, StoreError
from pyllama.store.layout import Store
from pyllama.store.names import ModelName
from pyllama.store.signing import load_openssh_key

log = logging.getLogger(__name__)

MIN_PART_SIZE = 100 * 1000 * 1000
MAX_PART_SIZE = 1000 * 1000 * 1000
MAX_PARTS_IN_FLIGHT = 16
MAX_LAYERS_IN_FLIGHT = 4
UPLOAD_MIN_PART = 100 * 1000 * 1000
UPLOAD_MAX_PART = 1000 * 1000 * 1000
STALL_TIMEOUT_S = 30.0
PROGRESS_INTERVAL_S = 0.06
CHUNK = 1 << 16

USER_AGENT = f"pyllama/0.1.0 ({platform.machine() or 'unknown'} {platform.system().lower()}) Python/{platform.python_version()}"

_challenge_re = re.compile(r'(\w+)="([^"]*)"')

_challenge_re = re.compile(r'(\w+)="([^"]*)"')


class Canceled(StoreError):
    status_code = 499

    def __init__(self) -> None:
        super().__init__("request canceled")


def short_hex(digest: str) -> str:
    """The 12 hex characters Ollama shows in ``pulling <hex>``."""
    return digest[7:19]


def status_error(response: httpx.Response) -> RegistryError:
    if response.status_code == 404:
        return RegistryError("file does not exist", 404)
    try:
        body = response.read().decode("utf-8", errors="replace").strip()
    except httpx.HTTPError:
        body = ""
    if response.status_code == 401:
        return RegistryError(f"401: unauthorized{': ' + body if body else ''}", 401)
    return RegistryError(f"{response.status_code}: {body}")


def default_key_path() -> Path:
    """The signing key: ``PYLLAMA_KEY`` if set, else Ollama's ``~/.ollama/id_ed25519``."""
    return Path(os.environ.get("PYLLAMA_KEY") or "~/.ollama/id_ed25519").expanduser()


def sign_challenge(data: bytes, key_path: Path) -> str | None:
    """Ollama's ``<public key>:<base64 signature>`` header value, or None without a key."""
    if not key_path.is_file():
        return None
    try:
        key = load_openssh_key(key_path)
    except (OSError, ValueError) as exc:
        log.warning("cannot sign registry challenge with %s: %s", key_path, exc)
        return None
    return f"{key.authorized_key}:{base64.b64encode(key.sign(data)).decode()}"


class RegistryHTTP:
    """HTTP to one registry host for one model name, with the bearer-token flow."""

    def __init__(
        self,
        store: Store,
        name: ModelName,
        *,
        insecure: bool = False,
        transport: httpx.BaseTransport | None = None,
        min_part_size: int = MIN_PART_SIZE,
        upload_part_size: int | None = None,
        retries: int = 6,
        backoff_s: float = 1.0,
        cancel: threading.Event | None = None,
        key_path: Path | None = None,
    ) -> None:
        if name.scheme == "http" and not insecure:
            raise RegistryError("insecure protocol http", 400)
        self.store = store
        self.name = name
        self.scheme = "http" if insecure else "https"
        self.base = f"{self.scheme}://{name.host}"
        self.min_part_size = min_part_size
        self.upload_part_size = upload_part_size
        self.retries = retries
        self.backoff_s = backoff_s
        self.cancel = cancel or threading.Event()
        self._abort = threading.Event()  # set when one layer of a pull fails
        self.token: str | None = None
        self.key_path = key_path or default_key_path()
        self._token_lock = threading.Lock()
        self.client = httpx.Client(
            transport=transport,
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(STALL_TIMEOUT_S),
            follow_redirects=False,
        )
        self._progress_lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP with the bearer challenge flow ---------------------------

    def _url(self, path: str) -> str:
        return f"{self.base}/v2/{self.name.repository}/{path}"

    def _same_host(self, url: str) -> bool:
        return urlsplit(url).netloc.lower() == urlsplit(self.base).netloc.lower()

    def _headers(self, url: str, extra: dict[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.token and self._same_host(url):
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None, stream: bool = False, **kwargs: Any) -> httpx.Response:
        """Send a request; on a 401 Bearer challenge fetch a token and retry once."""
        for attempt in range(2):
            request = self.client.build_request(method, url, headers=self._headers(url, headers), **kwargs)
            try:
                response = self.client.send(request, stream=stream)
            except httpx.HTTPError as exc:
                raise RegistryError(f"{method} {url}: {exc}") from None
            if response.status_code != 401 or attempt == 1:
                return response
            challenge = response.headers.get("WWW-Authenticate", "")
            response.close()
            if not challenge.lower().startswith("bearer "):
                raise RegistryError("401: unauthorized", 401)
            self._fetch_token(challenge)
        raise AssertionError("unreachable")

    def _fetch_token(self, challenge: str) -> None:
        params = dict(_challenge_re.findall(challenge))
        realm = params.get("realm", "")
        if not realm:
            raise RegistryError("401: unauthorized: no realm in challenge", 401)
        if urlsplit(realm).hostname != urlsplit(self.base).hostname:
            raise RegistryError(f"unauthorized: realm host {urlsplit(realm).hostname!r} does not match registry host", 401)
        query = {
            "service": params.get("service", ""),
            "scope": params.get("scope", ""),
            "ts": str(int(time.time())),
            "nonce": base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="),
        }
        parts = urlsplit(realm)
        joined_query = "&".join(q for q in (parts.query, urlencode(query)) if q)
        token_url = urlunsplit((parts.scheme, parts.netloc, parts.path, joined_query, ""))
        headers: dict[str, str] = {}
        body_hash = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
        signature = sign_challenge(f"GET,{token_url},{body_hash}".encode(), self.key_path)
        if signature:
            headers["Authorization"] = signature
        with self._token_lock:
            try:
                response = self.client.get(token_url, headers=headers)
            except httpx.HTTPError as exc:
                raise RegistryError(f"token request failed: {exc}") from None
            if response.status_code >= 400:
                raise status_error(response)
            try:
                data = response.json()
            except ValueError:
                raise RegistryError("token request failed: invalid JSON") from None
            token = data.get("token") or data.get("access_token")
            if not isinstance(token, str) or not token:
                raise RegistryError("token request failed: no token in response")
            self.token = token

    def _check(self) -> None:
        if self.cancel.is_set() or self._abort.is_set():
            raise Canceled()
