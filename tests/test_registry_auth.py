"""Registry authentication against the real thing: the CNCF distribution
registry with token auth, and a token service that checks Ollama-style
request signatures (tests/tokenservice.py). Pushes need a token granted to a
signed request; pulls work with an anonymous one; a challenge whose realm is
on another host is refused without contacting it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from ggufutil import write_tiny_llama
from serverutil import registry_available, start_registry, start_server
from tokenservice import SERVICE, TokenService, start_token_service


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An OpenSSH ed25519 key made by ssh-keygen; yields its path and base64 public key."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed; apt-get install openssh-client")
    path = tmp_path_factory.mktemp("key") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path, path.with_suffix(".pub").read_text().split()[1]


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory, signing_key: tuple[Path, str]) -> Iterator[TokenService]:
    with start_token_service(tmp_path_factory.mktemp("tokens"), authorized={signing_key[1]}) as service:
        yield service


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory, tokens: TokenService) -> Iterator[str]:
    if not registry_available():
        pytest.skip("docker-registry (the CNCF distribution registry) is not installed; apt-get install docker-registry")
    with start_registry(tmp_path_factory.mktemp("registry"), tokens.registry_auth()) as host:
        yield host


def test_registry_refuses_requests_without_a_token(auth_registry: str, tokens: TokenService) -> None:
    r = httpx.get(f"http://{auth_registry}/v2/auth/tiny/manifests/latest")
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="http://127.0.0.1:{tokens.port}/token",service="{SERVICE}"')
    assert 'scope="repository:auth/tiny:pull"' in challenge


def test_signed_push_and_anonymous_pull(auth_registry: str, tokens: TokenService, signing_key: tuple[Path, str],
                                        tmp_path: Path) -> None:
    key_path, public_b64 = signing_key
    name = f"{auth_registry}/auth/tiny:v1"
    with start_server({"PYLLAMA_MODELS": str(tmp_path / "a"), "PYLLAMA_KEY": str(key_path)}) as base:
        client = ollama.Client(host=base)
        digest = client.create_blob(write_tiny_llama(tmp_path / "t.gguf", seed=21))
        client.create(name, files={"model.gguf": digest}, license="signed")
        seen = len(tokens.requests)
        assert client.push(name, insecure=True).status == "success"
    pushed = tokens.requests[seen:]
    # Every token request was signed with our key, the signature checked out,
    # and the registry accepted the tokens granted for pushing.
    assert pushed and all(r.signer == public_b64 for r in pushed), pushed
    assert any("push" in g["actions"] for r in pushed for g in r.granted), pushed  # type: ignore[operator]

    with start_server({"PYLLAMA_MODELS": str(tmp_path / "b"), "PYLLAMA_KEY": str(tmp_path / "no-key")}) as base:
        client = ollama.Client(host=base)
        seen = len(tokens.requests)
        assert client.pull(name, insecure=True).status == "success"
        assert client.show(name).license == "signed"
    pulled = tokens.requests[seen:]
    assert pulled and all(r.signer is None and r.status == 200 for r in pulled), pulled
    assert all(g["actions"] == ["pull"] for r in pulled for g in r.granted), pulled


def test_push_without_a_key_is_refused_by_the_registry(auth_registry: str, tokens: TokenService,
                                                       tmp_path: Path) -> None:
    name = f"{auth_registry}/auth/anon:v1"
    with start_server({"PYLLAMA_MODELS": str(tmp_path / "a"), "PYLLAMA_KEY": str(tmp_path / "no-key")}) as base:
        client = ollama.Client(host=base)
        digest = client.create_blob(write_tiny_llama(tmp_path / "t.gguf", seed=22))
        client.create(name, files={"model.gguf": digest})
        seen = len(tokens.requests)
        with pytest.raises(ollama.ResponseError) as info:
            client.push(name, insecure=True)
    assert info.value.status_code == 401
    assert info.value.error.startswith("401: unauthorized"), info.value.error
    # The token service was asked (anonymously) and granted pull only; the registry said no to the upload.
    asked = tokens.requests[seen:]
    assert asked and all(r.signer is None for r in asked)
    assert any("push" in r.scope for r in asked) and all(g["actions"] == ["pull"] for r in asked for g in r.granted)
    r = httpx.get(f"http://{auth_registry}/v2/auth/anon/tags/list")
    assert r.status_code == 401  # and nothing to see without a token either


def test_realm_on_another_host_is_never_contacted(tmp_path: Path, tokens: TokenService) -> None:
    if not registry_available():
        pytest.skip("docker-registry (the CNCF distribution registry) is not installed; apt-get install docker-registry")
    # A registry on 127.0.0.1 whose challenge sends clients to a token service on "localhost".
    with start_registry(tmp_path / "registry", tokens.registry_auth(realm_host="localhost")) as host:
        with start_server({"PYLLAMA_MODELS": str(tmp_path / "m")}) as base:
            seen = len(tokens.requests)
            r = httpx.post(base + "/api/pull", json={"model": f"{host}/auth/tiny", "insecure": True, "stream": False},
                           timeout=60)
    assert r.status_code == 401
    assert r.json() == {"error": "pull model manifest: unauthorized: realm host 'localhost' "
                                 "does not match registry host"}
    assert tokens.requests[seen:] == []
