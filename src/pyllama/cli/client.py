"""HTTP calls the CLI makes, with the server's errors turned into one
exception carrying Ollama's message."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from pyllama.config import Config


class CLIError(Exception):
    """Printed as ``Error: <message>`` with a non-zero exit."""


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return f"HTTP {response.status_code}"


def auth_headers(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``Authorization: Bearer $PYLLAMA_API_KEY`` for a server started with API keys."""
    key = (os.environ if env is None else env).get("PYLLAMA_API_KEY", "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


class Client:
    """A thin synchronous client for the pyllama / Ollama API."""

    def __init__(self, config: Config | None = None, timeout: float | None = None) -> None:
        self.config = config or Config.from_env()
        self.base_url = self.config.base_url
        self.http = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(timeout, connect=5.0),
                                 headers=auth_headers())

    def close(self) -> None:
        self.http.close()

    def unreachable(self) -> CLIError:
        return CLIError(f"could not connect to pyllama server at {self.base_url}, is it running? "
                        "Start it with `pyllama serve`")

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        try:
            response = self.http.request(method, path, json=body)
        except httpx.ConnectError:
            raise self.unreachable() from None
        except httpx.HTTPError as exc:
            raise CLIError(str(exc)) from None
        if response.status_code >= 400:
            raise CLIError(_message(response))
        if not response.content:
            return None
        return response.json()

    def reachable(self) -> bool:
        try:
            self.http.get("/", timeout=2.0)
        except httpx.HTTPError:
            return False
        return True

    def _dropped(self) -> CLIError:
        """The connection ended in the middle of a response."""
        if not self.reachable():
            return CLIError("the server shut down")
        return CLIError("the server closed the connection before the response was complete")

    def stream(self, path: str, body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """POST and yield each NDJSON object; an ``error`` line raises."""
        try:
            with self.http.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise CLIError(_message(response))
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    if isinstance(item, dict) and "error" in item:
                        raise CLIError(str(item["error"]))
                    yield item
        except httpx.ConnectError:
            raise self.unreachable() from None
        except (httpx.RemoteProtocolError, httpx.ReadError):
            raise self._dropped() from None
        except httpx.HTTPError as exc:
            raise CLIError(str(exc)) from None
