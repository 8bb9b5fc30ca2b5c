"""/api/rerank, /v1/rerank and /rerank through a real server: httpx and the ``cohere`` client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cohere
import httpx
import ollama
import pytest

from inferenceutil import MODEL, inference_server, post
from rerankutil import DOCUMENTS, QUERY, RERANK_TEMPLATE, binding_scores, default_pair

from pyllama import _native

RERANKER = "reranker"
TEMPLATED = "reranker-template"
LONG = " ".join(f"bamboo{i}" for i in range(600))


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path, reranker_path: Path, reranker_template_path: Path) -> Iterator[str]:
    """SmolLM2 as ``smol`` (not a reranker) and the tiny reranker twice: with llama.cpp's
    default pair layout and with a rerank template."""
    with inference_server(module_models_dir, model_path, parallel=2) as url:
        client = ollama.Client(host=url)
        client.create(RERANKER, files={"model.gguf": client.create_blob(reranker_path)})
        client.create(TEMPLATED, files={"model.gguf": client.create_blob(reranker_template_path)})
        yield url


@pytest.fixture(scope="module")
def expected(reranker_path: Path) -> list[float]:
    """The low-level binding's scores for the test pairs (one decode, as the engine packs them)."""
    model = _native.Model(str(reranker_path))
    return binding_scores(reranker_path, [default_pair(model, QUERY, d) for d in DOCUMENTS])


def check_ranking(body: dict[str, Any], expected: list[float], n: int | None = None) -> None:
    """Results sorted by score, each score the binding's for that document."""
    results = body["results"]
    order = sorted(range(len(expected)), key=lambda i: -expected[i])[:n or len(expected)]
    assert [r["index"] for r in results] == order
    assert [r["relevance_score"] for r in results] == pytest.approx([expected[i] for i in order], abs=1e-6)
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)


def test_capability_in_show_and_tags(base: str) -> None:
    assert post(base, "/api/show", {"model": RERANKER}).json()["capabilities"] == ["embedding", "rerank"]
    assert "rerank" not in post(base, "/api/show", {"model": MODEL}).json()["capabilities"]
    tags = {m["name"]: m for m in httpx.get(base + "/api/tags").json()["models"]}
    assert "rerank" in tags[f"{RERANKER}:latest"]["capabilities"]
    assert "rerank" not in tags[f"{MODEL}:latest"]["capabilities"]


@pytest.mark.parametrize("path", ["/api/rerank", "/v1/rerank", "/rerank"])
def test_rerank_routes(base: str, path: str, expected: list[float], reranker_path: Path) -> None:
    resp = post(base, path, {"model": RERANKER, "query": QUERY, "documents": DOCUMENTS})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert list(body) == ["id", "model", "results", "usage"] and body["model"] == RERANKER
    check_ranking(body, expected)
    assert all(list(r) == ["index", "relevance_score"] for r in body["results"])
    model = _native.Model(str(reranker_path), vocab_only=True)
    n_tokens = sum(len(default_pair(model, QUERY, d)) for d in DOCUMENTS)
    assert body["usage"] == {"prompt_tokens": n_tokens, "total_tokens": n_tokens}


def test_top_n_and_documents(base: str, expected: list[float]) -> None:
    docs: list[Any] = [DOCUMENTS[0], {"text": DOCUMENTS[1], "id": "doc-1"}, *DOCUMENTS[2:]]
    body = post(base, "/v1/rerank", {"model": RERANKER, "query": QUERY, "documents": docs, "top_n": 2,
                                     "return_documents": True}).json()
    check_ranking(body, expected, 2)
    for result in body["results"]:
        given = docs[result["index"]]
        assert result["document"] == ({"text": given} if isinstance(given, str) else given)
    # top_n over the count is all of them
    body = post(base, "/api/rerank", {"model": RERANKER, "query": QUERY, "documents": DOCUMENTS, "top_n": 50}).json()
    check_ranking(body, expected)


def test_rerank_template_model(base: str, reranker_template_path: Path) -> None:
    model = _native.Model(str(reranker_template_path), vocab_only=True)
    pairs = [model.tokenize(RERANK_TEMPLATE.format(query=QUERY, document=d), add_special=False,
                            parse_special=True).tolist() for d in DOCUMENTS]
    body = post(base, "/rerank", {"model": TEMPLATED, "query": QUERY, "documents": DOCUMENTS}).json()
    check_ranking(body, binding_scores(reranker_template_path, pairs))
    assert body["usage"]["prompt_tokens"] == sum(len(p) for p in pairs)


def test_long_documents(base: str) -> None:
    ok = post(base, "/api/rerank", {"model": RERANKER, "query": QUERY, "documents": [LONG, DOCUMENTS[0]]})
    assert ok.status_code == 200 and ok.json()["usage"]["prompt_tokens"] <= 2 * 512
    refused = post(base, "/api/rerank", {"model": RERANKER, "query": QUERY, "documents": [DOCUMENTS[0], LONG],
                                         "truncate": False})
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("document 1: the input length exceeds the context length")


GOOD = {"model": RERANKER, "query": QUERY, "documents": DOCUMENTS[:2]}


@pytest.mark.parametrize(("body", "status", "error"), [
    ({**GOOD, "model": MODEL}, 400, '"smol" does not support rerank'),
    ({**GOOD, "documents": []}, 400, '"documents" must be a non-empty list'),
    ({**GOOD, "documents": [{"title": "x"}]}, 400, 'documents[0] must be a string or an object with a string "text"'),
    ({**GOOD, "documents": ["a", 1]}, 400, "Expected `str | object`, got `int` - at `$.documents[1]`"),
    ({"model": RERANKER, "documents": ["a"]}, 400, "Object missing required field `query`"),
    ({**GOOD, "top_n": 0}, 400, '"top_n" must be at least 1'),
    ({**GOOD, "rank_fields": ["title"]}, 400, '"rank_fields" is not supported'),
    ({**GOOD, "max_chunks_per_doc": 4}, 400, '"max_chunks_per_doc" is not supported'),
    ({**GOOD, "model": ""}, 404, "model '' not found"),
    ({**GOOD, "model": "nope"}, 404, "model 'nope' not found"),
    ({**GOOD, "options": {"num_ctx": "x"}}, 400, 'option "num_ctx" must be of type integer'),
])
def test_errors_in_each_family(base: str, body: dict[str, Any], status: int, error: str) -> None:
    ollama_resp = post(base, "/api/rerank", body)
    assert ollama_resp.status_code == status
    assert ollama_resp.json()["error"].startswith(error)
    for path in ("/v1/rerank", "/rerank"):
        resp = post(base, path, body)
        assert resp.status_code == status
        assert resp.json()["error"]["message"].startswith(error)
        assert resp.json()["error"]["type"] == ("invalid_request_error" if status == 400 else "not_found_error")


def test_cohere_client(base: str, expected: list[float]) -> None:
    """The ``cohere`` client's v1 rerank, pointed at the server."""
    co = cohere.Client(base_url=base, api_key="unused", timeout=120)
    out = co.rerank(model=RERANKER, query=QUERY, documents=DOCUMENTS, top_n=3, return_documents=True)
    order = sorted(range(len(expected)), key=lambda i: -expected[i])[:3]
    assert [r.index for r in out.results] == order
    assert [r.relevance_score for r in out.results] == pytest.approx([expected[i] for i in order], abs=1e-6)
    assert [r.document.text for r in out.results if r.document is not None] == [DOCUMENTS[i] for i in order]
    with pytest.raises(cohere.BadRequestError) as bad:
        co.rerank(model=MODEL, query=QUERY, documents=DOCUMENTS)
    assert bad.value.body["error"]["message"] == '"smol" does not support rerank'


def test_empty_query_and_document_still_rank(base: str, reranker_path: Path) -> None:
    """An empty text is still a pair ([CLS] [SEP] ...), as llama-server scores it."""
    body = post(base, "/api/rerank", {"model": RERANKER, "query": "", "documents": ["", "bamboo"]}).json()
    model = _native.Model(str(reranker_path), vocab_only=True)
    pairs = [default_pair(model, "", ""), default_pair(model, "", "bamboo")]
    check_ranking(body, binding_scores(reranker_path, pairs))
