"""/api/embed and the legacy /api/embeddings through a real server."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import ollama
import pytest

from inferenceutil import client  # noqa: F401 - a fixture
from inferenceutil import MODEL, inference_server, options, post


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path) -> Iterator[str]:
    with inference_server(module_models_dir, model_path, parallel=1) as url:
        yield url


def norm(vector: Sequence[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def test_embed_batch_is_normalised_and_ordered(client: ollama.Client) -> None:
    out = client.embed(MODEL, input=["The cat sat.", "Stock prices fell.", "The cat sat."], options=options())
    assert len(out.embeddings) == 3 and len(out.embeddings[0]) == 576
    for vector in out.embeddings:
        assert abs(norm(vector) - 1.0) < 1e-4
    assert out.embeddings[0] == pytest.approx(out.embeddings[2], abs=1e-5)
    assert out.embeddings[0] != pytest.approx(out.embeddings[1], abs=1e-3)
    assert isinstance(out.total_duration, int) and out.total_duration > 0
    assert isinstance(out.load_duration, int) and out.load_duration > 0
    assert out.prompt_eval_count and out.prompt_eval_count > 3

    single = client.embed(MODEL, input="The cat sat.", options=options())
    assert single.embeddings[0] == pytest.approx(out.embeddings[0], abs=1e-5)


def test_embed_dimensions_renormalise(base: str) -> None:
    body = post(base, "/api/embed", {"model": MODEL, "input": "hello", "dimensions": 8, "options": options()}).json()
    assert list(body) == ["model", "embeddings", "total_duration", "load_duration", "prompt_eval_count"]
    assert len(body["embeddings"][0]) == 8 and abs(norm(body["embeddings"][0]) - 1.0) < 1e-4


def test_embed_empty_input_loads(base: str) -> None:
    empties: list[object] = ["", [], None]
    for empty in empties:
        assert post(base, "/api/embed", {"model": MODEL, "input": empty}).json() == {"model": MODEL,
                                                                                      "embeddings": []}


def test_legacy_embeddings_not_normalised(client: ollama.Client, base: str) -> None:
    legacy = client.embeddings(MODEL, prompt="The cat sat.", options=options())
    assert len(legacy.embedding) == 576 and abs(norm(legacy.embedding) - 1.0) > 1e-3
    normalised = client.embed(MODEL, input="The cat sat.", options=options()).embeddings[0]
    scale = norm(legacy.embedding)
    assert [v / scale for v in legacy.embedding] == pytest.approx(normalised, abs=1e-4)
    assert post(base, "/api/embeddings", {"model": MODEL, "prompt": ""}).json() == {"embedding": []}


@pytest.mark.parametrize(("path", "body", "status", "error"), [
    ("/api/embed", {"model": "", "input": "x"}, 404, "model '' not found"),
    ("/api/embed", {"model": "nope", "input": "x"}, 404, "model 'nope' not found"),
    ("/api/embed", {"model": MODEL, "input": 5}, 400, "invalid input type"),
    ("/api/embed", {"model": MODEL, "input": ["a", 1]}, 400, "invalid input type"),
    ("/api/embed", {"model": MODEL, "input": "x", "options": {"num_ctx": []}}, 400,
     'option "num_ctx" must be of type integer'),
    ("/api/embed", {"model": MODEL, "input": "word " * 600, "truncate": False, "options": {"num_ctx": 64}}, 400,
     "exceeds the context length"),
    ("/api/embeddings", {"model": "", "prompt": "x"}, 400, "model is required"),
    ("/api/embeddings", {"model": "nope", "prompt": "x"}, 404, 'model "nope" not found, try pulling it first'),
    ("/api/embeddings", {"model": MODEL, "prompt": ["x"]}, 400, "$.prompt"),
])
def test_embed_errors(base: str, path: str, body: dict[str, object], status: int, error: str) -> None:
    resp = post(base, path, body)
    assert resp.status_code == status, resp.text
    assert error in resp.json()["error"]


def test_embed_truncates_by_default(client: ollama.Client) -> None:
    out = client.embed(MODEL, input="word " * 600, options={"num_ctx": 64})
    assert len(out.embeddings[0]) == 576 and 0 < (out.prompt_eval_count or 0) <= 64
