"""API keys through a real `pyllama serve`: the ollama, openai and anthropic clients with and
without keys, each family's 401 envelope, the keys file re-read on SIGHUP, the start-up warning
for a public address, and the CLI sending PYLLAMA_API_KEY."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest

from inferenceutil import MODEL, options
from opsutil import Served, clean_env, pyllama_serve, scrape
from pyllama.server.auth import presented_keys

KEYS = ("alpha-key-1", "beta-key-2")
WRONG = "wrong-key-that-must-not-echo"
BEARER = {"Authorization": f"Bearer {KEYS[0]}"}


@pytest.fixture(scope="module")
def served(module_models_dir: Path, model_path: Path) -> Iterator[Served]:
    with pyllama_serve({"PYLLAMA_MODELS": str(module_models_dir), "PYLLAMA_API_KEYS": ",".join(KEYS)}) as served:
        client = ollama.Client(host=served.base, headers=BEARER)
        # Bounded and greedy: `pyllama run` sends no num_predict, and a sampled
        # reply that never reaches EOS would run on (context shift) past any timeout.
        client.create(MODEL, files={"model.gguf": client.create_blob(model_path)},
                      parameters={"num_predict": 8, "temperature": 0})
        yield served
    for key in (*KEYS, WRONG):
        assert key not in served.output  # never logged


def test_public_routes_need_no_key(served: Served) -> None:
    assert httpx.get(served.base + "/").text == "Ollama is running"
    assert httpx.head(served.base + "/").status_code == 200
    assert httpx.get(served.base + "/api/version").status_code == 200
    assert httpx.head(served.base + "/api/version").status_code == 200


def test_web_chat_page_loads_without_a_key(served: Served) -> None:
    """The page's static files are open (it asks for the key itself); the API it calls is not."""
    page = httpx.get(served.base + "/ui/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert httpx.get(served.base + "/ui/app.js").status_code == 200
    assert httpx.get(served.base + "/api/tags").status_code == 401


def test_ollama_family(served: Served) -> None:
    for headers in ({}, {"Authorization": f"Bearer {WRONG}"}, {"Authorization": KEYS[0]}, {"x-api-key": WRONG}):
        response = httpx.get(served.base + "/api/tags", headers=headers)
        assert response.status_code == 401
        assert list(response.json()) == ["error"] and response.json()["error"].startswith("unauthorized")
        assert WRONG not in response.text
    assert httpx.get(served.base + "/api/tags", headers=BEARER).status_code == 200
    assert httpx.get(served.base + "/api/tags", headers={"Authorization": f"bearer {KEYS[1]}"}).status_code == 200

    with pytest.raises(ollama.ResponseError) as caught:
        ollama.Client(host=served.base).list()
    assert caught.value.status_code == 401
    client = ollama.Client(host=served.base, headers=BEARER, timeout=120)
    assert [m.model for m in client.list().models] == [f"{MODEL}:latest"]
    out = client.chat(MODEL, messages=[{"role": "user", "content": "Hi"}], options=options(num_predict=3))
    assert out.message.content


def test_openai_family(served: Served) -> None:
    for key in ("ollama", WRONG):  # what users point at Ollama with, and a wrong key
        sdk = openai.OpenAI(base_url=served.base + "/v1", api_key=key, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            sdk.models.list()
        body = caught.value.body
        assert isinstance(body, dict) and body["type"] == "invalid_request_error"
        assert body["message"].startswith("unauthorized") and WRONG not in body["message"]
    sdk = openai.OpenAI(base_url=served.base + "/v1", api_key=KEYS[1], max_retries=0, timeout=120)
    reply = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3,
                                        temperature=0)
    assert reply.choices[0].message.content


def test_anthropic_family(served: Served) -> None:
    sdk = anthropic.Anthropic(base_url=served.base, api_key=WRONG, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        sdk.messages.create(model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "Hi"}])
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "authentication_error" and WRONG not in str(body)
    # x-api-key (api_key) and Authorization: Bearer (auth_token) both work.
    for sdk in (anthropic.Anthropic(base_url=served.base, api_key=KEYS[0], max_retries=0, timeout=120),
                anthropic.Anthropic(base_url=served.base, auth_token=KEYS[1], max_retries=0, timeout=120)):
        reply = sdk.messages.create(model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "Hi"}])
        assert reply.content


def test_metrics_need_the_key_too(served: Served) -> None:
    assert httpx.get(served.base + "/metrics").status_code == 401
    samples = scrape(served.base, **BEARER)
    refused = sum(v for (name, labels), v in samples.items()
                  if name == "pyllama_http_requests_total" and ("status", "401") in labels)
    assert refused >= 1


def test_cors_preflight_needs_no_key(served: Served) -> None:
    response = httpx.options(served.base + "/api/chat", headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization"})
    assert response.status_code == 204
    assert "Authorization" in response.headers["access-control-allow-headers"]


def test_cli_sends_pyllama_api_key(served: Served, tmp_path: Path) -> None:
    host = served.base.removeprefix("http://")

    def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pyllama", *args], capture_output=True, text=True,
                              timeout=180, env=clean_env(PYLLAMA_HOST=host, HOME=str(tmp_path), **env))

    refused = cli("list")
    assert refused.returncode == 1 and refused.stderr.startswith("Error: unauthorized")
    assert cli("list", PYLLAMA_API_KEY=WRONG).stderr.startswith("Error: unauthorized: invalid API key")
    listed = cli("list", PYLLAMA_API_KEY=KEYS[1])
    assert listed.returncode == 0 and f"{MODEL}:latest" in listed.stdout
    ran = cli("run", MODEL, "Say hi", PYLLAMA_API_KEY=KEYS[0])
    assert ran.returncode == 0 and ran.stdout.strip()


def test_keys_file_is_reread_on_sighup(module_models_dir: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# who may call\nfirst-key\n\n")
    env = {"PYLLAMA_MODELS": str(module_models_dir), "PYLLAMA_API_KEYS_FILE": str(keys)}

    def status(served: Served, key: str) -> int:
        return httpx.get(served.base + "/api/tags", headers={"Authorization": f"Bearer {key}"}).status_code

    with pyllama_serve(env) as served:
        assert (status(served, "first-key"), status(served, "second-key")) == (200, 401)
        assert status(served, "# who may call") == 401
        keys.write_text("second-key\n")
        served.proc.send_signal(signal.SIGHUP)
        for _ in range(100):
            if status(served, "second-key") == 200:
                break
            time.sleep(0.1)
        assert (status(served, "first-key"), status(served, "second-key")) == (401, 200)
        # A file that cannot be read keeps the keys in use.
        keys.unlink()
        served.proc.send_signal(signal.SIGHUP)
        assert status(served, "second-key") == 200
        assert served.proc.poll() is None
    assert "keeping the keys already loaded" in served.output
    assert "second-key" not in served.output


def test_unreadable_keys_file_stops_serve(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pyllama", "serve"], capture_output=True, text=True, timeout=60,
                            env=clean_env(PYLLAMA_API_KEYS_FILE=str(tmp_path / "missing"), HOME=str(tmp_path),
                                          PYLLAMA_MODELS=str(tmp_path / "models")))
    assert result.returncode == 1
    assert result.stderr.startswith("Error: cannot read PYLLAMA_API_KEYS_FILE")


def test_public_address_without_keys_warns_once(module_models_dir: Path) -> None:
    with pyllama_serve({"PYLLAMA_MODELS": str(module_models_dir)}, host="0.0.0.0") as open_server:
        assert httpx.get(open_server.base + "/api/tags").status_code == 200
        assert httpx.get(open_server.base + "/metrics").status_code == 404  # off there by default
    assert open_server.output.count("without API keys") == 1
    with pyllama_serve({"PYLLAMA_MODELS": str(module_models_dir), "PYLLAMA_API_KEYS": KEYS[0]},
                       host="0.0.0.0") as guarded:
        assert httpx.get(guarded.base + "/api/tags").status_code == 401
        assert httpx.get(guarded.base + "/metrics", headers=BEARER).status_code == 200
    assert "without API keys" not in guarded.output
    with pyllama_serve({"PYLLAMA_MODELS": str(module_models_dir)}) as local:
        pass
    assert "without API keys" not in local.output


def test_presented_keys() -> None:
    assert presented_keys("Bearer  abc ", None) == ["abc"]
    assert presented_keys("Basic abc", None) == []
    assert presented_keys("Bearer", "xyz") == ["xyz"]
    assert presented_keys(None, None) == []
