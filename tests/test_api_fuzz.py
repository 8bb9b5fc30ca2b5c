"""Property-based fuzzing of every route against a real server, from its own OpenAPI document.

schemathesis reads /schema/openapi.json (built from the msgspec request
types) and generates valid and invalid requests for each operation; any
5xx, and any answer slower than the timeout (a hang), fails. The store
holds SmolLM2 under the name the generator is steered to (``smol``), with
an ``options`` object that keeps generations short, so requests reach the
model as well as the validation in front of it. Bounded: a fixed number of
examples per operation, no example database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

from inferenceutil import MODEL, inference_server  # noqa: E402

EXAMPLES = 6  # per operation and mode: about 300 requests in all
TIMEOUT = 60.0  # seconds: a request slower than this is a hang
SHORT = {"num_predict": 2, "num_ctx": 256}


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path, reranker_path: Path) -> Iterator[str]:
    with inference_server(module_models_dir, model_path, parallel=2) as url:
        client = ollama.Client(host=url)
        client.create(RERANKER, files={"model.gguf": client.create_blob(reranker_path)})
        yield url


@pytest.fixture(scope="module")
def operations(base: str) -> list[Any]:
    document = httpx.get(base + "/schema/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    ops = [result.ok() for result in schema.get_all_operations()]
    assert len(ops) >= 25
    return [op for op in ops if op.path not in SKIPPED]


# Registry traffic needs a network; it is tested against a local registry elsewhere.
SKIPPED = {"/api/pull", "/api/push"}
# Routes whose positive cases are half the time pointed at the stored model (not delete, copy, create).
STEERED = {"/api/generate", "/api/chat", "/api/embed", "/api/embeddings", "/api/show", "/v1/chat/completions",
           "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages", "/v1/messages/count_tokens",
           "/api/rerank", "/v1/rerank", "/rerank"}
RERANKER = "reranker"  # the rerank routes are steered to the tiny reranker


def _steer(case: Any, steer: bool) -> Any:
    """Half the positive cases name the stored model and keep generations short."""
    if steer and case.operation.path in STEERED and isinstance(case.body, dict):
        case.body["model"] = RERANKER if case.operation.path.endswith("/rerank") else MODEL
        opts = case.body.get("options")
        case.body["options"] = {**(opts if isinstance(opts, dict) else {}), **SHORT}
        for key in ("max_tokens", "max_output_tokens", "max_completion_tokens"):  # other routes ignore them
            case.body[key] = 2
    return case


def _label(op: Any) -> str:
    return f"{op.method.upper()} {op.path}"


@pytest.mark.timeout(600)
def test_no_route_answers_5xx_or_hangs(base: str, operations: list[Any]) -> None:
    failures: list[str] = []
    with httpx.Client(base_url=base, timeout=TIMEOUT) as http:
        for op in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=op.as_strategy(generation_mode=mode), steer=st.booleans())
                @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                          suppress_health_check=list(HealthCheck))
                def check(case: Any, steer: bool) -> None:
                    case = _steer(case, steer and mode == GenerationMode.POSITIVE)
                    kwargs = case.as_transport_kwargs(base_url=base)
                    method = kwargs.pop("method")
                    url = kwargs.pop("url")
                    body = kwargs.pop("json", None)
                    content = kwargs.pop("data", None)
                    try:
                        resp = http.request(method, url, json=body, content=content,
                                            headers={k: str(v) for k, v in (kwargs.get("headers") or {}).items()},
                                            params=kwargs.get("params"))
                    except httpx.TimeoutException:
                        failures.append(f"{_label(op)} hung: {str(body)[:300]}")
                        return
                    if resp.status_code >= 500:
                        failures.append(f"{_label(op)} -> {resp.status_code} {resp.text[:300]} for {str(body)[:300]}")

                try:
                    check()
                except Unsatisfiable:
                    assert mode == GenerationMode.NEGATIVE, _label(op)  # nothing to get wrong (no body, no params)
    assert not failures, "\n".join(failures[:20])
