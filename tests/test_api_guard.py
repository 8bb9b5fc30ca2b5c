"""Host-header allow-list and CORS through a real server, as Ollama does."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize("host", ["localhost:11434", "127.0.0.1", "[::1]:8080", "10.1.2.3", "box.local",
                                  "my.internal", "api.localhost", ""])
def test_allowed_hosts(module_server: str, host: str) -> None:
    r = httpx.get(f"{module_server}/api/version", headers={"Host": host})
    assert r.status_code == 200, host


@pytest.mark.parametrize("host", ["evil.example.com", "8.8.8.8", "example.com:11434"])
def test_rebinding_hosts_refused(module_server: str, host: str) -> None:
    r = httpx.get(f"{module_server}/api/version", headers={"Host": host})
    assert r.status_code == 403
    assert r.content == b""


def test_unknown_path_still_guarded(module_server: str) -> None:
    assert httpx.get(f"{module_server}/nope", headers={"Host": "evil.example.com"}).status_code == 403
    r = httpx.get(f"{module_server}/nope")
    assert r.status_code == 404


@pytest.mark.parametrize("origin", ["http://localhost", "https://127.0.0.1:3000", "app://anything",
                                    "vscode-webview://abc", "tauri://localhost", "http://0.0.0.0:8080"])
def test_default_origins_allowed(module_server: str, origin: str) -> None:
    r = httpx.get(f"{module_server}/api/tags", headers={"Origin": origin})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize("origin", ["http://evil.example.com", "chrome-extension://abcdef", "http://localhost.evil.com"])
def test_foreign_origins_refused(module_server: str, origin: str) -> None:
    r = httpx.get(f"{module_server}/api/tags", headers={"Origin": origin})
    assert r.status_code == 403
    assert r.content == b""


def test_preflight(module_server: str) -> None:
    r = httpx.options(f"{module_server}/api/chat", headers={
        "Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-stainless-os"})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "x-stainless-os" in r.headers["access-control-allow-headers"]
    assert "POST" in r.headers["access-control-allow-methods"]


def test_configured_origins(models_dir) -> None:
    from serverutil import start_server

    with start_server({"PYLLAMA_MODELS": str(models_dir), "OLLAMA_ORIGINS": "https://*.example.org,chrome-extension://*"}) as url:
        assert httpx.get(f"{url}/api/tags", headers={"Origin": "https://app.example.org"}).status_code == 200
        assert httpx.get(f"{url}/api/tags", headers={"Origin": "chrome-extension://xyz"}).status_code == 200
        assert httpx.get(f"{url}/api/tags", headers={"Origin": "https://example.net"}).status_code == 403


def test_non_loopback_listener_accepts_any_host(models_dir) -> None:
    from serverutil import start_server

    with start_server({"PYLLAMA_MODELS": str(models_dir), "PYLLAMA_HOST": "0.0.0.0:11434"}) as url:
        assert httpx.get(f"{url}/api/version", headers={"Host": "anything.example.com"}).status_code == 200
