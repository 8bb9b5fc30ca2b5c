"""A store written by hand in Ollama's layout (as Ollama itself leaves it) is
listed and shown correctly: Go template layer, params, system, license."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import httpx
import ollama
import pytest

from pyllama.store.modelfile import sha256_file
from serverutil import start_server

GO_TEMPLATE = (
    "{{- if .Messages }}{{- if or .System .Tools }}<|im_start|>system\n{{ .System }}\n"
    "{{- if .Tools }}\n# Tools\n{{- range .Tools }}\n{{ . }}{{- end }}{{- end }}<|im_end|>\n{{ end }}"
    "{{- range $i, $_ := .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "{{- else }}{{ .Prompt }}{{ end }}"
)
SYSTEM = "You are a helpful assistant."
LICENSE = "Apache License\nVersion 2.0"
PARAMS = {"stop": ["<|im_start|>", "<|im_end|>"], "temperature": 0.2, "num_ctx": 4096}


def put_blob(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest.replace(":", "-")).write_bytes(data)
    return digest, len(data)


def layer(media: str, digest: str, size: int) -> dict[str, object]:
    return {"mediaType": f"application/vnd.ollama.image.{media}", "digest": digest, "size": size}


@pytest.fixture(scope="module")
def ollama_store(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Path:
    root = tmp_path_factory.mktemp("ollama-models")
    blobs = root / "blobs"
    blobs.mkdir()
    model_digest = sha256_file(model_path)
    os.symlink(model_path, blobs / model_digest.replace(":", "-"))
    config = {
        "model_format": "gguf", "model_family": "llama", "model_families": ["llama"], "model_type": "135M",
        "file_type": "Q4_1", "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [model_digest]},  # legacy, ignored
    }
    config_digest, config_size = put_blob(blobs, json.dumps(config).encode())
    layers = [
        {**layer("model", model_digest, model_path.stat().st_size), "from": "qwen:latest"},
        layer("template", *put_blob(blobs, GO_TEMPLATE.encode())),
        layer("system", *put_blob(blobs, SYSTEM.encode())),
        layer("license", *put_blob(blobs, LICENSE.encode())),
        layer("params", *put_blob(blobs, json.dumps(PARAMS).encode())),
    ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config_size},
        "layers": layers,
    }
    path = root / "manifests/registry.ollama.ai/library/handmade/latest"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(manifest, indent=3))  # pulled manifests are kept as the registry sent them
    # An older model with the legacy ".prompt" template layer, on another registry.
    legacy_layers = [layers[0], layer("prompt", *put_blob(blobs, b"[INST] {{ .Prompt }} [/INST]"))]
    legacy = root / "manifests/example.com:5000/ns/Legacy/v1"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({**manifest, "layers": legacy_layers}))
    old = time.time() - 3 * 86400
    os.utime(legacy, (old, old))
    # A blob saved under the old "sha256:" file name (renamed at startup).
    stray = b"stray blob"
    (blobs / ("sha256:" + hashlib.sha256(stray).hexdigest())).write_bytes(stray)
    return root


def test_lists_and_shows_an_ollama_store(ollama_store: Path) -> None:
    with start_server({"OLLAMA_MODELS": str(ollama_store), "OLLAMA_NOPRUNE": "true"}) as base:
        client = ollama.Client(host=base)
        names = [m.model for m in client.list().models]
        assert names == ["handmade:latest", "example.com:5000/ns/Legacy:v1"]  # newest first
        tags = httpx.get(base + "/api/tags").json()["models"][0]
        raw = (ollama_store / "manifests/registry.ollama.ai/library/handmade/latest").read_bytes()
        assert tags["digest"] == hashlib.sha256(raw).hexdigest()
        assert tags["details"] == {
            "parent_model": "qwen:latest", "format": "gguf", "family": "llama", "families": ["llama"],
            "parameter_size": "135M", "quantization_level": "Q4_1",
        }
        assert tags["capabilities"] == ["completion", "tools"]

        shown = client.show("handmade")
        assert shown.template == GO_TEMPLATE
        assert shown.license == LICENSE
        assert shown.parameters == (
            'stop                           "<|im_start|>"\n'
            'stop                           "<|im_end|>"\n'
            "temperature                    0.2\n"
            "num_ctx                        4096"
        )
        assert shown.capabilities == ["completion", "tools"]
        body = httpx.post(base + "/api/show", json={"model": "HandMade:Latest"}).json()
        assert body["system"] == SYSTEM
        assert body["details"]["parent_model"] == "qwen:latest"
        modelfile = body["modelfile"]
        assert f'TEMPLATE "{GO_TEMPLATE}"' in modelfile
        assert f"SYSTEM {SYSTEM}\n" in modelfile
        assert "PARAMETER stop <|im_start|>\nPARAMETER stop <|im_end|>\nPARAMETER temperature 0.2\nPARAMETER num_ctx 4096\n" in modelfile
        assert f'LICENSE "{LICENSE}"\n' in modelfile

        legacy = client.show("example.com:5000/ns/legacy:v1")  # matched case-insensitively
        assert legacy.template == "[INST] {{ .Prompt }} [/INST]"
        assert legacy.capabilities == ["completion"]

        # Copies and deletes work on the foreign store without disturbing it.
        client.copy("handmade", "mine")
        client.delete("mine")
        assert client.show("handmade").license == LICENSE
    blobs = sorted(p.name for p in (ollama_store / "blobs").iterdir())
    assert not [b for b in blobs if b.startswith("sha256:")]  # renamed at startup
    assert "sha256-" + hashlib.sha256(b"stray blob").hexdigest() in blobs  # NOPRUNE kept it


def test_startup_prune(tmp_path: Path) -> None:
    root = tmp_path / "m"
    blobs = root / "blobs"
    blobs.mkdir(parents=True)
    old = time.time() - 2 * 3600
    fresh_digest, _ = put_blob(blobs, b"fresh unreferenced")
    stale_digest, _ = put_blob(blobs, b"old unreferenced")
    os.utime(blobs / stale_digest.replace(":", "-"), (old, old))
    used_digest, used_size = put_blob(blobs, b"used")
    os.utime(blobs / used_digest.replace(":", "-"), (old, old))
    tmp = blobs / ".tmp-upload-stale"
    tmp.write_bytes(b"x")
    os.utime(tmp, (old, old))
    partial = blobs / (used_digest.replace(":", "-")[:-4] + "beef-partial")
    partial.write_bytes(b"resumable")
    (root / "manifests/registry.ollama.ai/library/empty").mkdir(parents=True)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": used_digest, "size": used_size},
                "layers": []}
    m = root / "manifests/registry.ollama.ai/library/keep/latest"
    m.parent.mkdir(parents=True)
    m.write_text(json.dumps(manifest))
    with start_server({"PYLLAMA_MODELS": str(root)}):
        pass
    left = {p.name for p in blobs.iterdir()}
    assert fresh_digest.replace(":", "-") in left  # younger than an hour
    assert stale_digest.replace(":", "-") not in left
    assert used_digest.replace(":", "-") in left
    assert partial.name in left  # resumable pull state survives restarts
    assert tmp.name not in left
    assert not (root / "manifests/registry.ollama.ai/library/empty").exists()
    assert m.is_file()


def test_corrupt_manifest_disables_prune_and_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "m"
    blobs = root / "blobs"
    blobs.mkdir(parents=True)
    digest, _ = put_blob(blobs, b"maybe used by the corrupt manifest")
    old = time.time() - 2 * 3600
    os.utime(blobs / digest.replace(":", "-"), (old, old))
    bad = root / "manifests/registry.ollama.ai/library/broken/latest"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with start_server({"PYLLAMA_MODELS": str(root)}) as base:
        assert httpx.get(base + "/api/tags").json() == {"models": []}
        r = httpx.post(base + "/api/show", json={"model": "broken"})
        assert r.status_code == 404
    assert (blobs / digest.replace(":", "-")).is_file()
