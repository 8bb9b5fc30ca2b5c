"""Model references: a store name resolves to the weights file, the manifest
digest and the details /api/ps shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggufutil import write_tiny_llama
from pyllama.scheduler import ModelRef, RunnerOptions, resolve_model
from pyllama.store.errors import InvalidRequest, NotFound
from pyllama.store.layout import Store
from pyllama.store.manifest import CONFIG_MEDIA_TYPE, MEDIA_MODEL, MEDIA_SYSTEM, Layer, Manifest, encode_manifest
from pyllama.store.names import parse_name


def _add(store: Store, name: str, media: str, data: bytes) -> Manifest:
    config, _ = store.write_blob(b"{}")
    digest, _ = store.write_blob(data)
    manifest = Manifest(config=Layer(CONFIG_MEDIA_TYPE, config, 2), layers=[Layer(media, digest, len(data))])
    store.write_manifest(parse_name(name), encode_manifest(manifest), manifest)
    return manifest


def test_store_names_resolve_to_refs(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    weights = write_tiny_llama(tmp_path / "tiny.gguf").read_bytes()
    manifest = _add(store, "tiny", MEDIA_MODEL, weights)
    ref = resolve_model(store, "Tiny")
    assert ref.name == ref.model == "tiny:latest"
    assert ref.path == store.blob_path(manifest.layers[0].digest) and ref.path.read_bytes() == weights
    assert ref.digest == store.get(parse_name("tiny")).manifest_digest
    assert ref.details["family"] == "llama" and ref.details["format"] == "gguf"

    with pytest.raises(NotFound, match="model 'nope' not found"):
        resolve_model(store, "nope")
    with pytest.raises(InvalidRequest, match="invalid model name"):
        resolve_model(store, "bad name!")
    _add(store, "nothing", MEDIA_SYSTEM, b"only a system prompt")
    with pytest.raises(NotFound, match='model "nothing:latest" not found, try pulling it first'):
        resolve_model(store, "nothing")


def test_ref_from_a_plain_file(model_path: Path) -> None:
    ref = ModelRef.from_path(model_path)
    assert ref.name == model_path.stem and ref.details["quantization_level"] == "Q4_1"


def test_runner_options_pick_runner_keys() -> None:
    opts = RunnerOptions.from_mapping({"num_ctx": 2048.0, "temperature": 0.1, "num_thread": 2, "num_gpu": None})
    assert opts == RunnerOptions(num_ctx=2048, num_thread=2)
    with pytest.raises(ValueError, match='option "num_batch" must be of type integer'):
        RunnerOptions.from_mapping({"num_batch": True})
