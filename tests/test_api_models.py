"""Model-management routes through HTTP: the official ``ollama`` client where it
has a call, raw httpx for status codes and error bodies."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from ggufutil import write_tiny_llama
from pyllama.store.layout import Store
from pyllama.store.modelfile import sha256_file
from pyllama.store.names import parse_name
from serverutil import start_server


@pytest.fixture(scope="module")
def client(module_server: str) -> ollama.Client:
    return ollama.Client(host=module_server)


@pytest.fixture(scope="module")
def smol_digest(client: ollama.Client, model_path: Path) -> str:
    return client.create_blob(model_path)


@pytest.fixture(scope="module")
def smol(client: ollama.Client, smol_digest: str) -> str:
    """A model created from the SmolLM2 GGUF with a system prompt and parameters."""
    client.create("smol", files={"model.gguf": smol_digest}, system="You are terse.",
                  parameters={"temperature": 0.5, "stop": ["<|im_end|>", "END"], "num_ctx": 2048})
    return "smol:latest"


def post(base: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
    if isinstance(body, (bytes, str)):
        return httpx.post(base + path, content=body, timeout=60, **kw)
    return httpx.post(base + path, json=body, timeout=60, **kw)


def ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


# -- blobs ---------------------------------------------------------------------


def test_blobs_head_and_post(module_server: str, client: ollama.Client, model_path: Path, smol_digest: str) -> None:
    assert smol_digest == sha256_file(model_path)
    assert httpx.head(f"{module_server}/api/blobs/{smol_digest}").status_code == 200
    assert httpx.head(f"{module_server}/api/blobs/{smol_digest.replace(':', '-')}").status_code == 200
    missing = "sha256:" + "0" * 64
    r = httpx.request("HEAD", f"{module_server}/api/blobs/{missing}")
    assert r.status_code == 404
    r = httpx.head(f"{module_server}/api/blobs/sha256:xyz")
    assert r.status_code == 400
    # Already present: 200 without reading; new: 201.
    assert post(module_server, f"/api/blobs/{smol_digest}", b"ignored").status_code == 200
    data = b"hello blob"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert post(module_server, f"/api/blobs/{digest}", data).status_code == 201
    assert httpx.head(f"{module_server}/api/blobs/{digest}").status_code == 200


def test_blob_errors(module_server: str, module_models_dir: Path) -> None:
    bad = post(module_server, "/api/blobs/sha256:1234", b"x")
    assert bad.status_code == 400 and bad.json() == {"error": "invalid digest format"}
    want = "sha256:" + hashlib.sha256(b"expected").hexdigest()
    got = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    r = post(module_server, f"/api/blobs/{want}", b"something else")
    assert r.status_code == 400
    assert r.json() == {"error": f'digest mismatch, expected "{want}", got "{got}"'}
    assert httpx.head(f"{module_server}/api/blobs/{want}").status_code == 404
    assert not (module_models_dir / "blobs" / want.replace(":", "-")).exists()
    assert not [p for p in (module_models_dir / "blobs").iterdir() if p.name.startswith(".tmp-")]
    r = httpx.head(f"{module_server}/api/blobs/{want}")
    assert r.status_code == 404


def test_truncated_upload_leaves_nothing(module_server: str, module_models_dir: Path) -> None:
    payload = b"x" * 100_000
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    port = int(module_server.rsplit(":", 1)[1])
    blobs = module_models_dir / "blobs"

    def uploads() -> list[Path]:
        return [p for p in blobs.iterdir() if p.name.startswith(".tmp-upload-")] if blobs.is_dir() else []

    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = (f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Length: {len(payload)}\r\nContent-Type: application/octet-stream\r\n\r\n")
        sock.sendall(head.encode() + payload[:40_000])
        for _ in range(400):  # the server has started writing the upload
            if uploads():
                break
            time.sleep(0.05)
        assert uploads()
    for _ in range(400):  # ...and drops it once the client is gone
        if not uploads():
            break
        time.sleep(0.05)
    assert not uploads()
    assert httpx.head(f"{module_server}/api/blobs/{digest}").status_code == 404


# -- create, list, show ------------------------------------------------------------


def test_create_streams_ollama_status_lines(module_server: str, smol: str, smol_digest: str) -> None:
    r = post(module_server, "/api/create", {"model": "streamed", "files": {"model.gguf": smol_digest}, "system": "hi"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    statuses = [line["status"] for line in ndjson(r)]
    assert statuses[0] == "parsing GGUF"
    assert statuses[1] == f"using existing layer {smol_digest}"
    assert statuses[2].startswith(("creating new layer sha256:", "using existing layer sha256:"))
    assert statuses[-2:] == ["writing manifest", "success"]
    r = post(module_server, "/api/create", {"model": "streamed", "files": {"model.gguf": smol_digest}, "system": "hi", "stream": False})
    assert r.status_code == 200 and r.json() == {"status": "success"}
    assert r.headers["content-type"].startswith("application/json")
    assert httpx.request("DELETE", module_server + "/api/delete", json={"model": "streamed"}).status_code == 200


def test_list(client: ollama.Client, module_server: str, smol: str) -> None:
    listing = httpx.get(module_server + "/api/tags").json()
    entry = next(m for m in listing["models"] if m["name"] == smol)
    assert entry["model"] == smol
    assert len(entry["digest"]) == 64 and ":" not in entry["digest"]
    assert entry["details"] == {
        "parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
        "parameter_size": "134.52M", "quantization_level": "Q4_1",
    }
    assert entry["context_length"] == 8192 and entry["embedding_length"] == 576
    assert entry["capabilities"] == ["completion"]
    assert entry["size"] > 98_000_000
    assert "T" in entry["modified_at"]
    models = client.list().models
    assert smol in [m.model for m in models]
    assert httpx.head(module_server + "/api/tags").status_code == 200


def test_show(client: ollama.Client, module_server: str, module_models_dir: Path, smol: str, smol_digest: str, model_path: Path) -> None:
    shown = client.show("smol")
    assert shown.details is not None and shown.details.family == "llama"
    assert shown.parameters == (
        'temperature                    0.5\n'
        'stop                           "<|im_end|>"\n'
        'stop                           "END"\n'
        'num_ctx                        2048'
    )
    blob = module_models_dir / "blobs" / smol_digest.replace(":", "-")
    assert shown.modelfile == (
        '# Modelfile generated by "pyllama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        "# FROM smol:latest\n\n"
        f"FROM {blob}\n"
        "SYSTEM You are terse.\n"
        "PARAMETER temperature 0.5\n"
        "PARAMETER stop <|im_end|>\n"
        "PARAMETER stop END\n"
        "PARAMETER num_ctx 2048\n"
    )
    assert shown.template and "im_start" in shown.template  # the GGUF chat template
    assert shown.capabilities == ["completion"]
    raw = post(module_server, "/api/show", {"model": "SMOL:Latest"}).json()
    assert raw["system"] == "You are terse."
    info = raw["model_info"]
    assert info["general.architecture"] == "llama"
    assert info["llama.context_length"] == 8192
    assert info["general.parameter_count"] == 134515008
    assert info["tokenizer.ggml.tokens"] == [] and info["tokenizer.ggml.merges"] == []
    assert info["general.languages"] == ["en"]
    assert "general.name" not in info and "tokenizer.chat_template" not in info
    assert "license" not in raw and "messages" not in raw
    verbose = post(module_server, "/api/show", {"name": "smol", "verbose": True}).json()
    assert len(verbose["model_info"]["tokenizer.ggml.tokens"]) == 49152
    assert len(verbose["tensors"]) == 272 and set(verbose["tensors"][0]) == {"name", "type", "shape"}


def test_create_from_existing_model(client: ollama.Client, module_server: str, module_models_dir: Path, smol: str, smol_digest: str) -> None:
    stream = list(client.create(
        "user/pirate:v2", from_="smol", template="{{ if .System }}S:{{ .System }}{{ end }}U:{{ .Prompt }}A:",
        system="Arr.", license=["MIT", "Apache"], parameters={"temperature": 0.9, "top_k": 5},
        messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy"}], stream=True,
    ))
    statuses = [p.status for p in stream]
    assert statuses[0] == f"using existing layer {smol_digest}"
    assert statuses[-1] == "success"
    shown = client.show("user/pirate:v2")
    assert shown.details is not None and shown.details.parent_model == "smol:latest"
    assert shown.template == "{{ if .System }}S:{{ .System }}{{ end }}U:{{ .Prompt }}A:"
    assert shown.license == "MIT\nApache"
    raw = post(module_server, "/api/show", {"model": "user/pirate:v2"}).json()
    assert raw["system"] == "Arr."
    assert raw["messages"] == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ahoy"}]
    # Inherited parameters merged under the request's.
    params = dict(line.split(None, 1) for line in raw["parameters"].splitlines() if not line.startswith("stop"))
    assert params == {"temperature": "0.9", "top_k": "5", "num_ctx": "2048"}
    assert "MESSAGE user Hi\nMESSAGE assistant Ahoy\n" in raw["modelfile"]
    assert 'TEMPLATE {{ if .System }}S:{{ .System }}{{ end }}U:{{ .Prompt }}A:\n' in raw["modelfile"]
    manifest = json.loads((module_models_dir / "manifests/registry.ollama.ai/user/pirate/v2").read_text())
    model_layer = manifest["layers"][0]
    assert model_layer == {"mediaType": "application/vnd.ollama.image.model", "digest": smol_digest,
                           "size": model_layer["size"], "from": "smol:latest"}
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    config = json.loads((module_models_dir / "blobs" / manifest["config"]["digest"].replace(":", "-")).read_text())
    assert config["model_format"] == "gguf" and config["model_family"] == "llama"
    assert config["file_type"] == "Q4_1" and config["architecture"] == "amd64" and config["os"] == "linux"
    media = [layer["mediaType"].rsplit(".", 1)[1] for layer in manifest["layers"]]
    assert media == ["model", "template", "system", "license", "license", "params", "messages"]


def test_case_insensitive_create_overwrites(client: ollama.Client, smol_digest: str) -> None:
    client.create("CaseModel:Tag1", files={"model.gguf": smol_digest})
    client.create("casemodel:tag1", files={"model.gguf": smol_digest}, system="second")
    names = [m.model for m in client.list().models if m.model and m.model.lower() == "casemodel:tag1"]
    assert names == ["CaseModel:Tag1"]
    assert client.show("CASEMODEL:TAG1").modelfile is not None
    client.delete("casemodel:TAG1")
    assert not [m for m in client.list().models if m.model and m.model.lower() == "casemodel:tag1"]


def test_copy_and_delete_prune(client: ollama.Client, module_server: str, module_models_dir: Path, smol: str, smol_digest: str) -> None:
    unique = b"a unique license text for the prune test"
    client.create("prune-a", files={"model.gguf": smol_digest}, license=unique.decode())
    license_blob = module_models_dir / "blobs" / ("sha256-" + hashlib.sha256(unique).hexdigest())
    assert license_blob.is_file()
    assert client.copy("prune-a", "prune-b").status == "success"
    r = post(module_server, "/api/copy", {"source": "prune-a", "destination": "ns/prune-c:x"})
    assert r.status_code == 200 and r.content == b""
    names = [m.model for m in client.list().models]
    assert {"prune-a:latest", "prune-b:latest", "ns/prune-c:x"} <= set(names)
    assert client.delete("prune-a").status == "success"
    assert license_blob.is_file()  # still used by the copies
    r = httpx.request("DELETE", module_server + "/api/delete", json={"name": "prune-b"})
    assert r.status_code == 200 and r.content == b""
    client.delete("ns/prune-c:x")
    assert not license_blob.exists()
    assert (module_models_dir / "blobs" / smol_digest.replace(":", "-")).is_file()  # smol still uses it
    assert not (module_models_dir / "manifests/registry.ollama.ai/ns").exists()  # empty dirs removed


# -- error paths -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"model": "bad//name", "files": {"a.gguf": "sha256:" + "0" * 64}}, 400, "invalid model name"),
        ({"model": "x"}, 400, "neither 'from' or 'files' was specified"),
        ({"model": "x", "files": {"../a.gguf": "sha256:" + "0" * 64}}, 400, "file path must be relative"),
        ({"model": "x", "files": {"/etc/a.gguf": "sha256:" + "0" * 64}}, 400, "file path must be relative"),
        ({"model": "x", "files": {"a.gguf": ""}}, 400, "invalid digest format"),
        ({"model": "x", "files": {"a.gguf": "sha256:" + "0" * 64}}, 400, f'blob "sha256:{"0" * 64}" not found'),
        ({"model": "x", "from": "smol", "adapters": {"a": "sha256:" + "1" * 64, "b": "sha256:" + "2" * 64}}, 400,
         "only one adapter is currently supported"),
        ({"model": "x", "from": "smol", "template": "{{ if .System }}"}, 400, "template: :1: unexpected EOF in if"),
        ({"model": "x", "from": "smol", "parameters": {"warp": 9}}, 400, "unknown parameter 'warp'"),
        ({"model": "x", "from": "smol", "parameters": {"top_k": "x"}}, 400, 'option "top_k" must be of type integer'),
        ({"model": "x", "from": "smol", "quantize": "q9_z"}, 400, "unsupported quantization type q9_z - supported types are"),
        ({"model": "x", "from": "smol", "stream": "yes"}, 400, "Expected `bool | null`, got `str` - at `$.stream`"),
        ({"model": "x", "from": "smol", "requires": "soon"}, 400, "requires must be a valid semver (e.g. 0.14.0)"),
    ],
)
def test_create_errors(module_server: str, smol: str, body: dict[str, Any], status: int, error: str) -> None:
    r = post(module_server, "/api/create", body)
    assert r.status_code == status
    assert r.json()["error"].startswith(error)


def test_create_quantize_needs_float_weights(module_server: str, smol: str) -> None:
    r = post(module_server, "/api/create", {"model": "q", "from": "smol", "quantize": "q8_0", "stream": False})
    assert r.status_code == 400
    assert r.json() == {"error": "quantization is only supported for F16, BF16 and F32 models"}
    # Streaming, but failing before the first line: still a real status code.
    r = post(module_server, "/api/create", {"model": "q", "from": "smol", "quantize": "Q8_0"})
    assert (r.status_code, r.json()) == (400, {"error": "quantization is only supported for F16, BF16 and F32 models"})


def test_create_from_missing_model_tries_to_pull(module_server: str) -> None:
    # A loopback "registry" nobody listens on: the pull fails, nothing is created.
    r = post(module_server, "/api/create", {"model": "y", "from": "127.0.0.1:9/ns/missing", "stream": False})
    assert r.status_code >= 400 and "error" in r.json()
    assert post(module_server, "/api/show", {"model": "y"}).status_code == 404


def test_request_body_errors(module_server: str) -> None:
    for path in ("/api/show", "/api/create", "/api/copy", "/api/pull", "/api/push"):
        r = post(module_server, path, b"")
        assert (r.status_code, r.json()) == (400, {"error": "missing request body"}), path
        r = post(module_server, path, b"{not json")
        assert r.status_code == 400 and r.json()["error"], path
    r = httpx.request("DELETE", module_server + "/api/delete", content=b"")
    assert (r.status_code, r.json()) == (400, {"error": "missing request body"})


def test_show_errors(module_server: str) -> None:
    assert post(module_server, "/api/show", {"model": "nope"}).json() == {"error": "model 'nope' not found"}
    assert post(module_server, "/api/show", {"model": "nope"}).status_code == 404
    r = post(module_server, "/api/show", {"model": ""})
    assert (r.status_code, r.json()) == (400, {"error": "model is required"})
    r = post(module_server, "/api/show", {"model": "../../etc/passwd"})
    assert (r.status_code, r.json()) == (400, {"error": "invalid model name"})
    r = post(module_server, "/api/show", {"model": 5})
    assert r.status_code == 400 and "Expected `str`" in r.json()["error"]


def test_copy_delete_errors(module_server: str, smol: str) -> None:
    r = post(module_server, "/api/copy", {"source": "a//b", "destination": "x"})
    assert (r.status_code, r.json()) == (400, {"error": 'source "a//b" is invalid'})
    r = post(module_server, "/api/copy", {"source": "smol", "destination": "../x"})
    assert (r.status_code, r.json()) == (400, {"error": 'destination "../x" is invalid'})
    r = post(module_server, "/api/copy", {"source": "ghost", "destination": "x"})
    assert (r.status_code, r.json()) == (404, {"error": 'model "ghost" not found'})
    r = httpx.request("DELETE", module_server + "/api/delete", json={"model": "ghost"})
    assert (r.status_code, r.json()) == (404, {"error": "model 'ghost' not found"})
    r = httpx.request("DELETE", module_server + "/api/delete", json={"model": "a/../b"})
    assert (r.status_code, r.json()) == (400, {"error": 'name "a/../b" is invalid'})
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=module_server).show("ghost")
    assert info.value.status_code == 404 and info.value.error == "model 'ghost' not found"


def test_pull_push_request_errors(module_server: str) -> None:
    r = post(module_server, "/api/pull", {"model": ""})
    assert (r.status_code, r.json()) == (400, {"error": "model is required"})
    r = post(module_server, "/api/pull", {"model": "bad//name"})
    assert (r.status_code, r.json()) == (400, {"error": "invalid model name"})
    r = post(module_server, "/api/pull", {"model": "http://127.0.0.1:9/ns/m"})
    assert (r.status_code, r.json()) == (400, {"error": "insecure protocol http"})
    lines = ndjson(post(module_server, "/api/push", {"model": "127.0.0.1:9/ns/ghost", "insecure": True}))
    assert [line.get("status") for line in lines[:2]] == ["retrieving manifest", "couldn't retrieve manifest"]
    assert lines[-1] == {"error": "model '127.0.0.1:9/ns/ghost:latest' not found"}


def test_routing_errors(module_server: str) -> None:
    r = httpx.get(module_server + "/api/unknown")
    assert (r.status_code, r.text) == (404, "404 page not found")
    assert httpx.get(module_server + "/api/create").status_code == 405
    assert httpx.get(module_server + "/").text == "Ollama is running"


def test_status_reports_cloud_disabled(module_server: str, tmp_path: Path) -> None:
    assert httpx.get(module_server + "/api/status").json() == {"cloud": {"disabled": True, "source": "none"}}
    with start_server({"PYLLAMA_MODELS": str(tmp_path), "OLLAMA_NO_CLOUD": "1"}) as url:
        assert httpx.get(url + "/api/status").json() == {"cloud": {"disabled": True, "source": "env"}}


# -- quantize, capabilities, pruning settings (fresh servers) ------------------------


def test_quantize_on_create(server: str, tmp_path: Path) -> None:
    pytest.importorskip("pyllama._native")
    tiny = write_tiny_llama(tmp_path / "tiny-f32.gguf")
    client = ollama.Client(host=server)
    digest = client.create_blob(tiny)
    progress = list(client.create("tiny-q8", files={"model.gguf": digest}, quantize="q8_0", stream=True))
    statuses = [p.status for p in progress]
    assert "quantizing F32 model to Q8_0" in statuses
    q = next(p for p in progress if p.status == "quantizing F32 model to Q8_0")
    assert q.digest == "0000000000000000000" and q.total == tiny.stat().st_size
    assert "verifying conversion" in statuses and statuses[-1] == "success"
    shown = client.show("tiny-q8")
    assert shown.details is not None and shown.details.quantization_level == "Q8_0"


def test_capabilities_from_gguf_and_template(server: str, tmp_path: Path) -> None:
    client = ollama.Client(host=server)
    embed = client.create_blob(write_tiny_llama(tmp_path / "e.gguf", extra_kv={"llama.pooling_type": 1}, seed=1))
    client.create("embedder", files={"model.gguf": embed})
    assert client.show("embedder").capabilities == ["embedding"]
    plain = client.create_blob(write_tiny_llama(tmp_path / "p.gguf", seed=2))
    client.create("tooly", files={"model.gguf": plain},
                  template="{{ if .Tools }}T{{ end }}{{ if .Suffix }}<fim>{{ end }}"
                           "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}"
                           "{{ .Content }}{{ end }}")
    assert client.show("tooly").capabilities == ["completion", "tools", "insert", "thinking"]
    vision = client.create_blob(write_tiny_llama(tmp_path / "v.gguf", extra_kv={"llama.vision.block_count": 2}, seed=3))
    client.create("seer", files={"model.gguf": vision})
    assert client.show("seer").capabilities == ["completion", "vision"]


def test_noprune_keeps_blobs(tmp_path: Path, model_path: Path) -> None:
    models = tmp_path / "m"
    with start_server({"PYLLAMA_MODELS": str(models), "OLLAMA_NOPRUNE": "1"}) as base:
        client = ollama.Client(host=base)
        digest = client.create_blob(write_tiny_llama(tmp_path / "t.gguf"))
        client.create("keep", files={"model.gguf": digest}, system="unique system text")
        client.delete("keep")
        assert (models / "blobs" / digest.replace(":", "-")).is_file()
        assert (models / "blobs" / ("sha256-" + hashlib.sha256(b"unique system text").hexdigest())).is_file()


def test_concurrent_creates_from_one_upload_while_deletes_run(server: str, models_dir: Path, tmp_path: Path) -> None:
    """Four clients each create their own model from the same upload, check
    it, and delete it again, so the upload's last reference comes and goes
    while other creates are in flight. A create may only fail the documented
    way: the blob was pruned before the create looked at it ('blob ... not
    found' before it reported using the layer); the client then uploads
    again and retries. Once a create has reported the layer, a concurrent
    delete must not prune it."""
    from concurrent.futures import ThreadPoolExecutor

    client = ollama.Client(host=server)
    weights = write_tiny_llama(tmp_path / "c.gguf")
    digest = client.create_blob(weights)
    missing = f'blob "{digest}" not found'
    store = Store(models_dir)

    def create(name: str, system: str) -> None:
        """Create until it succeeds (at most 20 attempts)."""
        errors: list[str] = []
        while len(errors) < 20:
            seen: list[str] = []
            try:
                for progress in client.create(name, files={"model.gguf": digest}, system=system, stream=True):
                    seen.append(progress.status or "")
                assert seen[-1] == "success", seen
                return
            except ollama.ResponseError as exc:
                # Refused up front (400) or failed while parsing, before the layer was used.
                assert exc.error == missing, (name, exc.error, seen)
                assert f"using existing layer {digest}" not in seen, (name, seen)
                errors.append(exc.error)
                client.create_blob(weights)  # upload again
        raise AssertionError(f"{name}: 20 attempts failed")

    def churn(i: int) -> None:
        for j in range(6):
            name = f"race{i}-{j}"
            create(name, f"system {j % 2}")
            model = store.get(parse_name(name))  # it exists until this thread deletes it
            assert digest in model.manifest.digests()
            assert all(store.has_blob(d) for d in model.manifest.digests()), (name, model.manifest)
            client.delete(name)  # its own model: must succeed

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(churn, range(4)))
    assert client.list().models == []
    # Every model is gone, so nothing references the upload and no create holds it.
    assert list(store.iter_models()) == [] and not store.has_blob(digest)
    r = post(server, "/api/create", {"model": "late", "files": {"model.gguf": digest}, "stream": False})
    assert (r.status_code, r.json()) == (400, {"error": missing})


def test_store_resolve_uses_existing_case(models_dir: Path) -> None:
    store = Store(models_dir)
    (models_dir / "manifests/registry.ollama.ai/library/MiXed").mkdir(parents=True)
    assert store.resolve(parse_name("mixed:latest")).model == "MiXed"


def test_create_rejects_non_gguf_and_broken_gguf(server: str, tmp_path: Path) -> None:
    client = ollama.Client(host=server)
    (tmp_path / "model.safetensors").write_bytes(b'{"__metadata__":{}}' + b"\x00" * 64)
    (tmp_path / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 32)
    st = client.create_blob(tmp_path / "model.safetensors")
    broken = client.create_blob(tmp_path / "broken.gguf")
    r = post(server, "/api/create", {"model": "st", "files": {"model.safetensors": st}, "stream": False})
    assert r.status_code == 400
    assert r.json() == {"error": "model.safetensors: unsupported file format (only GGUF files are supported)"}
    r = post(server, "/api/create", {"model": "br", "files": {"broken.gguf": broken}, "stream": False})
    assert r.status_code == 400 and r.json()["error"].startswith("broken.gguf: ")
    assert client.list().models == []


def test_create_with_projector(server: str, tmp_path: Path) -> None:
    client = ollama.Client(host=server)
    weights = client.create_blob(write_tiny_llama(tmp_path / "w.gguf", seed=4))
    projector = client.create_blob(write_tiny_llama(tmp_path / "mmproj.gguf", arch="clip", seed=5))
    client.create("seeing", files={"model.gguf": weights, "mmproj.gguf": projector})
    shown = post(server, "/api/show", {"model": "seeing"}).json()
    assert shown["capabilities"] == ["completion", "vision"]
    assert shown["details"]["families"] == ["llama", "clip"]
    assert shown["projector_info"]["general.architecture"] == "clip"
    lines = shown["modelfile"].splitlines()
    froms = [line for line in lines if line.startswith("FROM ")]
    assert [f.rsplit("-", 1)[1] for f in froms] == [weights.split(":")[1], projector.split(":")[1]]


def test_adapter_gguf_in_files_becomes_an_adapter_layer(server: str, models_dir: Path, tmp_path: Path) -> None:
    client = ollama.Client(host=server)
    base = client.create_blob(write_tiny_llama(tmp_path / "base.gguf", seed=11))
    client.create("base", files={"model.gguf": base})
    lora = client.create_blob(write_tiny_llama(tmp_path / "lora.gguf", extra_kv={"general.type": "adapter"}, seed=12))
    client.create("tuned", from_="base", files={"lora.gguf": lora})
    modelfile = client.show("tuned").modelfile or ""
    blobs = models_dir / "blobs"
    assert f"\nFROM {blobs / base.replace(':', '-')}\nADAPTER {blobs / lora.replace(':', '-')}\n" in modelfile
