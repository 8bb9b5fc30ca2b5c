"""/api/generate and /api/ps through a real server: the ollama client, raw NDJSON, errors, load/unload."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

from inferenceutil import client  # noqa: F401 - a fixture
from inferenceutil import CREATED_AT, METRICS, MODEL, inference_server, ndjson, options, post

PROMPT = "Write one sentence about the sea."


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path) -> Iterator[str]:
    with inference_server(module_models_dir, model_path) as url:
        yield url


def test_generate_stream_matches_non_stream(base: str, client: ollama.Client) -> None:
    whole = client.generate(MODEL, PROMPT, options=options(num_predict=12))
    assert whole.done and whole.done_reason in ("stop", "length")
    assert whole.response
    assert whole.context and all(isinstance(t, int) for t in whole.context)
    for name in METRICS:
        assert isinstance(getattr(whole, name), int) and getattr(whole, name) > 0, name

    resp, lines = ndjson(base, "/api/generate", {"model": MODEL, "prompt": PROMPT, "options": options(num_predict=12)})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    *chunks, last = lines
    assert chunks, "expected at least one token chunk"
    for chunk in chunks:
        assert set(chunk) <= {"model", "created_at", "response", "done", "thinking", "logprobs"}
        assert chunk["model"] == MODEL and chunk["done"] is False and isinstance(chunk["response"], str)
        assert CREATED_AT.match(chunk["created_at"])
    assert last["done"] is True and last["response"] == "" and last["done_reason"] == whole.done_reason
    assert CREATED_AT.match(last["created_at"])
    for name in METRICS:
        assert isinstance(last[name], int) and last[name] > 0, name
    assert last["eval_count"] == whole.eval_count
    assert "".join(c["response"] for c in chunks) == whole.response
    assert last["context"] == whole.context


def test_generate_client_stream(client: ollama.Client) -> None:
    parts = list(client.generate(MODEL, PROMPT, stream=True, options=options(num_predict=6)))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert parts[-1].eval_count == 6 and parts[-1].done_reason == "length"


def test_non_stream_wire_shape(base: str) -> None:
    resp = post(base, "/api/generate", {"model": MODEL, "prompt": PROMPT, "stream": False,
                                        "options": options(num_predict=4)})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert list(body)[:4] == ["model", "created_at", "response", "done"]
    assert body["done_reason"] == "length" and body["eval_count"] == 4
    assert "thinking" not in body and "logprobs" not in body


def test_context_continues_and_raw_omits_it(client: ollama.Client) -> None:
    first = client.generate(MODEL, "My name is Ada.", options=options(num_predict=4))
    second = client.generate(MODEL, "What is my name?", context=first.context, options=options(num_predict=4))
    assert first.context and second.context
    assert list(second.context[: len(first.context)]) == list(first.context)  # the old turn is the new prompt's prefix
    raw = client.generate(MODEL, "The capital of France is", raw=True, options=options(num_predict=3))
    assert raw.context is None and raw.response


def test_logprobs(base: str) -> None:
    body = post(base, "/api/generate", {"model": MODEL, "prompt": PROMPT, "stream": False, "logprobs": True,
                                        "top_logprobs": 3, "options": options(num_predict=3)}).json()
    assert len(body["logprobs"]) == 3
    for item in body["logprobs"]:
        assert isinstance(item["token"], str) and item["logprob"] <= 0
        assert item["bytes"] == list(item["token"].encode())
        assert len(item["top_logprobs"]) == 3
        assert item["top_logprobs"][0]["logprob"] >= item["top_logprobs"][-1]["logprob"]
    assert "".join(i["token"] for i in body["logprobs"]) == body["response"]


def test_stop_and_system_override(client: ollama.Client) -> None:
    out = client.generate(MODEL, "Count: 1, 2, 3,", raw=True, options=options(num_predict=20, stop=[","]))
    assert "," not in (out.response or "") and out.done_reason == "stop"
    rendered = client.generate(MODEL, "hi", system="You are a pirate.", options=options(num_predict=1))
    assert rendered.done


def test_debug_render_only(base: str) -> None:
    body = post(base, "/api/generate", {"model": MODEL, "prompt": "hello there", "system": "Be brief.",
                                        "_debug_render_only": True}).json()
    assert "Be brief." in body["_debug_info"]["rendered_template"]
    assert "hello there" in body["_debug_info"]["rendered_template"]
    assert body["_debug_info"]["image_count"] == 0 and body["done"] is False
    body = post(base, "/api/generate", {"model": MODEL, "prompt": "x", "template": "[{{ .Prompt }}]",
                                        "_debug_render_only": True}).json()
    assert body["_debug_info"]["rendered_template"] == "[x]"


def test_load_unload_and_ps(base: str, client: ollama.Client) -> None:
    loaded = post(base, "/api/generate", {"model": MODEL, "options": options()}).json()
    assert loaded["done"] is True and loaded["done_reason"] == "load" and loaded["response"] == ""
    assert CREATED_AT.match(loaded["created_at"])
    ps = client.ps()
    names = [m.name for m in ps.models]
    assert "smol:latest" in names
    entry = ps.models[names.index("smol:latest")]
    assert entry.context_length and entry.size and entry.digest
    assert entry.details and entry.details.family == "llama"

    unloaded = post(base, "/api/generate", {"model": MODEL, "keep_alive": 0}).json()
    assert unloaded == {"model": MODEL, "created_at": unloaded["created_at"], "response": "", "done": True,
                        "done_reason": "unload"}
    assert "smol:latest" not in [m.name for m in client.ps().models]
    # unloading a model that is not loaded is still a 200
    assert post(base, "/api/generate", {"model": MODEL, "keep_alive": 0}).status_code == 200


def test_keep_alive_zero_unloads_after_request(client: ollama.Client) -> None:
    client.generate(MODEL, PROMPT, keep_alive=0, options=options(num_predict=2))
    assert "smol:latest" not in [m.name for m in client.ps().models]


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"model": "", "prompt": "x"}, 404, "model '' not found"),
    ({"model": "nope", "prompt": "x"}, 404, "model 'nope' not found"),
    ({"model": "bad//name", "prompt": "x"}, 400, "invalid model name"),
    ({"model": MODEL, "prompt": 5}, 400, "prompt"),
    ({"model": MODEL, "prompt": "x", "top_logprobs": 21}, 400, "top_logprobs must be between 0 and 20"),
    ({"model": MODEL, "prompt": "x", "options": {"temperature": "hot"}}, 400,
     'option "temperature" must be of type float32'),
    ({"model": MODEL, "prompt": "x", "options": {"num_ctx": "big"}}, 400, 'option "num_ctx" must be of type integer'),
    ({"model": MODEL, "prompt": "x", "options": {"temperature": -1}}, 400, "temperature must be >= 0"),
    ({"model": MODEL, "prompt": "x", "options": {"main_gpu": -1}}, 400, "main_gpu must be >= 0"),
    ({"model": MODEL, "prompt": "x", "options": {"main_gpu": 64}}, 400, "main_gpu 64 is not a GPU of this machine"),
    ({"model": MODEL, "prompt": "x", "think": True}, 400, '"smol" does not support thinking'),
    ({"model": MODEL, "prompt": "x", "think": "high"}, 400, '"smol" does not support thinking'),
    ({"model": MODEL, "prompt": "x", "think": "loud"}, 400, 'invalid think value: "loud"'),
    ({"model": MODEL, "prompt": "x", "think": 3}, 400, "think must be a boolean or string"),
    ({"model": MODEL, "prompt": "x", "keep_alive": "300"}, 400, 'time: missing unit in duration "300"'),
    ({"model": MODEL, "prompt": "x", "keep_alive": [1]}, 400, "Unsupported type: 'list'"),
    ({"model": MODEL, "prompt": "x", "format": "xml"}, 400,
     'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object'),
    ({"model": MODEL, "prompt": "x", "format": {"type": "nonsense"}}, 400, "invalid JSON schema in format"),
    ({"model": MODEL, "prompt": "x", "raw": True, "system": "s"}, 400,
     "raw mode does not support template, system, or context"),
    ({"model": MODEL, "prompt": "x", "suffix": "y"}, 400,
     "registry.ollama.ai/library/smol:latest does not support insert"),
    ({"model": MODEL, "prompt": "x", "images": [base64.b64encode(b"\x89PNG").decode()]}, 400,
     "this model is missing data required for image input"),
    ({"model": MODEL, "prompt": "x", "images": ["not base64!"]}, 400, "illegal base64 data at input byte 3"),
    ({"model": MODEL, "prompt": "x", "template": "{{ .Prompt "}, 400, "template:"),
    ({"model": MODEL, "prompt": "x", "context": [10**9]}, 400, "invalid context"),
])
def test_generate_errors(base: str, body: dict[str, object], status: int, error: str) -> None:
    resp = post(base, "/api/generate", body)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert error in resp.json()["error"]


@pytest.mark.parametrize(("content", "error"), [
    (b"", "missing request body"),
    (b"{not json", "malformed"),
    (b"[1, 2]", "Expected `object`"),
])
def test_malformed_bodies(base: str, content: bytes, error: str) -> None:
    for path in ("/api/generate", "/api/chat", "/api/embed", "/api/embeddings"):
        resp = post(base, path, content)
        assert resp.status_code == 400, (path, resp.text)
        assert error in resp.json()["error"]


def test_client_error_surface(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.generate("missing-model", "hi")
    assert info.value.status_code == 404


FIM_TEMPLATE = "{{ if .Suffix }}<fim_prefix>{{ .Prompt }}<fim_suffix>{{ .Suffix }}<fim_middle>{{ else }}{{ .Prompt }}{{ end }}"


def test_suffix_fill_in_the_middle(base: str, client: ollama.Client, model_path: Path) -> None:
    client.create("smol-fim", files={"model.gguf": client.create_blob(model_path)}, template=FIM_TEMPLATE)
    assert "insert" in (client.show("smol-fim").capabilities or [])
    prompt, suffix = "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"
    body = {"model": "smol-fim", "prompt": prompt, "suffix": suffix, "options": options(num_predict=4)}
    rendered = post(base, "/api/generate", {**body, "_debug_render_only": True}).json()
    assert rendered["_debug_info"]["rendered_template"] == (
        "<fim_prefix>def add(a, b):\n    return <fim_suffix>\n\nprint(add(1, 2))\n<fim_middle>")
    out = client.generate("smol-fim", prompt, suffix, options=options(num_predict=4))
    assert out.done and out.eval_count
