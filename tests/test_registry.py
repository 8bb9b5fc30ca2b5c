"""Push and pull against a real OCI registry (the CNCF distribution registry),
plus the failure cases: interrupted and resumed pulls, corrupt data, unknown
models and the bearer-token challenge."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from ggufutil import write_tiny_llama
from pyllama.store.signing import load_openssh_key
from pyllama.store.errors import RegistryError
from pyllama.store.layout import Store
from pyllama.store.modelfile import sha256_file
from pyllama.store.names import parse_name
from pyllama.store.registry import RegistryClient, pull_model, push_model
from serverutil import SRC_DIR, start_server


def statuses(progress: list[Any]) -> list[str]:
    return [p.status for p in progress]


def dedup(items: list[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return out


def test_push_delete_pull_round_trip(registry: str, server: str, models_dir: Path, model_path: Path, tmp_path: Path) -> None:
    client = ollama.Client(host=server)
    digest = client.create_blob(model_path)
    name = f"{registry}/test/smol:v1"
    client.create(name, files={"model.gguf": digest}, system="Be brief.", parameters={"stop": ["<|im_end|>"]})
    store = Store(models_dir)
    before = store.get(parse_name(name))
    layer_digests = sorted(before.manifest.digests())

    pushed = list(client.push(name, insecure=True, stream=True))
    shown = dedup(statuses(pushed))
    assert shown[0] == "retrieving manifest"
    assert shown[-2:] == ["pushing manifest", "success"]
    expected = [f"pushing {layer.digest[7:19]}" for layer in [*before.manifest.layers, before.manifest.config]]
    assert [s for s in shown if s.startswith("pushing ") and s != "pushing manifest"] == expected
    last = {p.digest: p for p in pushed if p.digest}
    assert all(p.completed == p.total for p in last.values())

    # The registry now serves exactly our manifest.
    r = httpx.get(f"http://{registry}/v2/test/smol/manifests/v1",
                  headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert r.status_code == 200 and r.content == before.raw

    # Pushing again finds every blob present.
    again = list(client.push(name, insecure=True, stream=True))
    assert all(p.completed == p.total for p in again if p.digest)

    client.delete(name)
    assert not any(store.has_blob(d) for d in layer_digests)

    pulled = list(client.pull(name, insecure=True, stream=True))
    shown = dedup(statuses(pulled))
    assert shown[0] == "pulling manifest"
    assert shown[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    assert {p.digest for p in pulled if p.digest} == set(layer_digests)
    after = store.get(parse_name(name))
    assert after.raw == before.raw  # stored byte for byte
    assert sorted(after.manifest.digests()) == layer_digests
    assert all(sha256_file(store.blob_path(d)) == d for d in layer_digests)
    assert sha256_file(store.blob_path(digest)) == sha256_file(model_path)
    assert client.show(name).parameters == 'stop                           "<|im_end|>"'
    listed = {m.model: m.digest for m in client.list().models}
    assert listed[f"{registry}/test/smol:v1"] == before.manifest_digest

    # Pulling what is already present reports every layer complete at once.
    again = list(client.pull(name, insecure=True, stream=True))
    assert all(p.completed == p.total for p in again if p.digest)
    assert statuses(again)[-1] == "success"


def test_pull_into_second_store_and_errors(registry: str, tmp_path: Path) -> None:
    source = Store(tmp_path / "a")
    with start_server({"PYLLAMA_MODELS": str(source.root)}) as base:
        client = ollama.Client(host=base)
        digest = client.create_blob(write_tiny_llama(tmp_path / "t.gguf"))
        client.create(f"{registry}/other/tiny", files={"model.gguf": digest}, license="L")
        assert client.push(f"{registry}/other/tiny", insecure=True).status == "success"
    with start_server({"PYLLAMA_MODELS": str(tmp_path / "b")}) as base:
        client = ollama.Client(host=base)
        assert client.pull(f"{registry}/other/tiny:latest", insecure=True).status == "success"
        assert client.show(f"{registry}/other/tiny").license == "L"

        # Unknown model: streamed error line, or a plain 404 without streaming.
        r = httpx.post(base + "/api/pull", json={"model": f"{registry}/other/ghost", "insecure": True}, timeout=30)
        lines = [json.loads(line) for line in r.text.splitlines()]
        assert lines == [{"status": "pulling manifest"}, {"error": "pull model manifest: file does not exist"}]
        r = httpx.post(base + "/api/pull", json={"model": f"{registry}/other/ghost", "insecure": True, "stream": False}, timeout=30)
        assert (r.status_code, r.json()) == (404, {"error": "pull model manifest: file does not exist"})
        with pytest.raises(ollama.ResponseError) as info:
            client.pull(f"{registry}/other/ghost", insecure=True)
        assert info.value.status_code == 404
        assert not (tmp_path / "b/manifests" / registry / "other/ghost").exists()


class _FaultyTransport(httpx.HTTPTransport):
    """Real HTTP, but blob bodies can be cut short or corrupted; records Range headers."""

    def __init__(self, cut_after: int | None = None, corrupt: bool = False) -> None:
        super().__init__()
        self.cut_after = cut_after
        self.corrupt = corrupt
        self.ranges: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        rng = request.headers.get("Range", "")
        if request.method != "GET" or "/blobs/" not in request.url.path or not rng or rng == "bytes=0-0":
            return response
        with self.lock:
            self.ranges.append((request.url.path, rng))
        inner = response.stream
        cut_after, corrupt = self.cut_after, self.corrupt

        class Body(httpx.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                sent = 0
                for chunk in inner:  # type: ignore[union-attr]
                    if corrupt and sent == 0 and chunk:
                        chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                    if cut_after is not None and sent + len(chunk) > cut_after:
                        yield chunk[: cut_after - sent]
                        raise httpx.ReadError("connection cut by test")
                    sent += len(chunk)
                    yield chunk

            def close(self) -> None:
                inner.close()  # type: ignore[union-attr]

        return httpx.Response(response.status_code, headers=response.headers, stream=Body(), request=request)


@pytest.fixture
def pushed_tiny(registry: str, tmp_path: Path) -> tuple[str, Store]:
    """A model pushed to the registry straight from a store (no server)."""
    store = Store(tmp_path / "src")
    from pyllama.store.create import create_model, validate_create

    tiny = write_tiny_llama(tmp_path / "r.gguf", seed=7)
    writer = store.blob_writer()
    writer.write(tiny.read_bytes())
    digest = writer.commit()
    name = f"{registry}/resume/tiny:v1"
    create_model(store, validate_create(model=name, files={"model.gguf": digest}, system="resume"), lambda _: None)
    push_model(store, parse_name(name), lambda _: None, insecure=True)
    return name, store


def test_interrupted_pull_resumes_and_never_leaves_a_broken_model(pushed_tiny: tuple[str, Store], tmp_path: Path) -> None:
    name, source = pushed_tiny
    model = source.get(parse_name(name))
    weights = model.manifest.layers[0]
    store = Store(tmp_path / "dst")
    cut = _FaultyTransport(cut_after=100_000)
    with pytest.raises(RegistryError, match="download of part"):
        pull_model(store, parse_name(name), lambda _: None, insecure=True, transport=cut,
                   min_part_size=256 * 1024, retries=0)
    assert not store.exists(parse_name(name))  # no manifest, so no broken model
    assert not store.has_blob(weights.digest)
    partial = store.blob_path(weights.digest).with_name(store.blob_path(weights.digest).name + "-partial")
    assert partial.is_file()
    states = [json.loads(p.read_text()) for p in sorted(partial.parent.glob(partial.name + "-*"))]
    assert states and all(set(s) == {"N", "Offset", "Size", "Completed"} for s in states)
    done_before = {s["N"]: s["Completed"] for s in states}
    assert any(0 < c < s["Size"] for s, c in zip(states, done_before.values()))

    resume = _FaultyTransport()
    events: list[dict[str, Any]] = []
    pull_model(store, parse_name(name), events.append, insecure=True, transport=resume, min_part_size=256 * 1024)
    starts = sorted(int(r.split("=")[1].split("-")[0]) for path, r in resume.ranges if path.endswith(weights.digest))
    # Every part restarts exactly where it stopped; nothing is fetched twice.
    assert starts == sorted(s["Offset"] + s["Completed"] for s in states if s["Completed"] < s["Size"])
    assert store.get(parse_name(name)).raw == model.raw
    assert sha256_file(store.blob_path(weights.digest)) == weights.digest
    assert not list(partial.parent.glob("*-partial*"))
    first = next(e for e in events if e.get("digest") == weights.digest)
    assert first["completed"] == sum(done_before.values())  # progress starts from the resumed amount


def test_corrupt_download_is_rejected(pushed_tiny: tuple[str, Store], tmp_path: Path) -> None:
    name, source = pushed_tiny
    weights = source.get(parse_name(name)).manifest.layers[0]
    store = Store(tmp_path / "dst")
    with pytest.raises(RegistryError) as info:
        pull_model(store, parse_name(name), lambda _: None, insecure=True, transport=_FaultyTransport(corrupt=True))
    assert info.value.message.startswith(f"digest mismatch, file must be downloaded again: want {weights.digest}, got sha256:")
    assert not store.has_blob(weights.digest)
    assert not store.exists(parse_name(name))
    assert not list(store.blobs_dir.glob("*-partial*"))
    # A clean retry then succeeds.
    pull_model(store, parse_name(name), lambda _: None, insecure=True)
    assert sha256_file(store.blob_path(weights.digest)) == weights.digest


def test_concurrent_pulls_share_blobs(pushed_tiny: tuple[str, Store], tmp_path: Path) -> None:
    name, _ = pushed_tiny
    store = Store(tmp_path / "dst")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            pull_model(store, parse_name(name), lambda _: None, insecure=True)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    model = store.get(parse_name(name))
    assert all(store.has_blob(d) for d in model.manifest.digests())


def test_delete_during_a_pull_cannot_prune_its_layers(pushed_tiny: tuple[str, Store], tmp_path: Path) -> None:
    """Re-pulling a model whose layers are all present while it is deleted:
    the delete lands after the pull found the layers and before it writes the
    manifest. The pull holds them, so it still ends with a complete model."""
    name, source = pushed_tiny
    store = Store(tmp_path / "dst")
    pull_model(store, parse_name(name), lambda _: None, insecure=True)

    def emit(line: dict[str, Any]) -> None:
        if line.get("status") == "verifying sha256 digest":
            worker = threading.Thread(target=store.delete, args=(parse_name(name),))
            worker.start()
            worker.join()
            assert not store.exists(parse_name(name))

    pull_model(store, parse_name(name), emit, insecure=True)
    model = store.get(parse_name(name))
    assert model.raw == source.get(parse_name(name)).raw
    assert all(store.has_blob(d) for d in model.manifest.digests())


def test_chunked_upload_in_parts(registry: str, tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    from pyllama.store.create import create_model, validate_create

    writer = store.blob_writer()
    writer.write(write_tiny_llama(tmp_path / "p.gguf", seed=9).read_bytes())
    digest = writer.commit()
    name = parse_name(f"{registry}/parts/tiny")
    create_model(store, validate_create(model=str(name.display_full), files={"m.gguf": digest}), lambda _: None)
    events: list[dict[str, Any]] = []
    push_model(store, name, events.append, insecure=True, upload_part_size=300_000)
    progress = [e["completed"] for e in events if e.get("digest") == digest]
    assert progress[0] == 0 and progress[-1] == store.blob_path(digest).stat().st_size
    r = httpx.head(f"http://{registry}/v2/parts/tiny/blobs/{digest}")
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == progress[-1]


def test_bearer_challenge_flow(tmp_path: Path) -> None:
    """401 + ``WWW-Authenticate: Bearer`` -> token from the realm -> retried request."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/token":
            q = request.url.params
            assert q["service"] == "reg.test" and q["scope"] == "repository:ns/m:pull"
            assert q["ts"].isdigit() and len(q["nonce"]) >= 16
            return httpx.Response(200, json={"token": "secret-token"})
        if request.headers.get("Authorization") != "Bearer secret-token":
            return httpx.Response(401, headers={"WWW-Authenticate":
                'Bearer realm="https://reg.test/token",service="reg.test",scope="repository:ns/m:pull"'})
        return httpx.Response(200, content=b'{"schemaVersion":2}')

    client = RegistryClient(Store(tmp_path), parse_name("reg.test/ns/m"), transport=httpx.MockTransport(handler),
                            key_path=tmp_path / "no-key")
    assert client.fetch_manifest() == b'{"schemaVersion":2}'
    assert [r.url.path for r in seen] == ["/v2/ns/m/manifests/latest", "/token", "/v2/ns/m/manifests/latest"]
    assert "Authorization" not in seen[1].headers  # no key: anonymous token request
    assert client.token == "secret-token"


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")
def test_token_request_is_signed_like_ollama(tmp_path: Path) -> None:
    key_file = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_file)], check=True)
    key = load_openssh_key(key_file)
    public_b64 = (tmp_path / "id_ed25519.pub").read_text().split()[1]
    seen: dict[str, str] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            seen["auth"] = request.headers["Authorization"]
            seen["url"] = str(request.url)
            return httpx.Response(200, json={"token": "t"})
        if request.headers.get("Authorization") != "Bearer t":
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://reg.test/token",service="s",scope="x"'})
        return httpx.Response(200, content=b"{}")

    client = RegistryClient(Store(tmp_path), parse_name("reg.test/ns/m"), transport=httpx.MockTransport(handler), key_path=key_file)
    client.fetch_manifest()
    public, signature = seen["auth"].split(":")
    assert public == public_b64
    body_hash = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
    message = f"GET,{seen['url']},{body_hash}".encode()
    assert base64.b64decode(signature) == key.sign(message)
    key.private.public_key().verify(base64.b64decode(signature), message)  # raises if invalid


def test_bearer_realm_must_match_registry_host(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "reg.test"  # never talks to the foreign realm
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://evil.test/token",service="x"'})

    client = RegistryClient(Store(tmp_path), parse_name("reg.test/ns/m"), transport=httpx.MockTransport(handler))
    with pytest.raises(RegistryError, match="does not match registry host"):
        client.fetch_manifest()


def test_insecure_scheme_requires_flag(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="insecure protocol http"):
        RegistryClient(Store(tmp_path), parse_name("http://reg.test/ns/m"))


def test_two_processes_pulling_the_same_model(pushed_tiny: tuple[str, Store], tmp_path: Path) -> None:
    name, source = pushed_tiny
    root = tmp_path / "shared"
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(SRC_DIR)!r})\n"
        "from pyllama.store.layout import Store\n"
        "from pyllama.store.names import parse_name\n"
        "from pyllama.store.registry import pull_model\n"
        f"pull_model(Store({str(root)!r}), parse_name({name!r}), lambda _: None, insecure=True, min_part_size=64 * 1024)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(3)]
    results = [(p.wait(120), p.stderr.read().decode() if p.stderr else "") for p in procs]
    assert all(rc == 0 for rc, _ in results), results
    store = Store(root)
    model = store.get(parse_name(name))
    assert model.raw == source.get(parse_name(name)).raw
    assert all(sha256_file(store.blob_path(d)) == d for d in model.manifest.digests())
    assert not list(store.blobs_dir.glob("*-partial*"))
