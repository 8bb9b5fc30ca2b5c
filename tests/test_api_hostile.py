"""Hostile and unlucky input through a real server: every API family answers with a 4xx in its own
envelope, never a 500; generations are bounded; half characters never reach a client; corrupt
models are refused with their reason; the OpenAPI document describes every route."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from inferenceutil import client  # noqa: F401 - a fixture
from inferenceutil import MODEL, inference_server, ndjson, options, post
from pyllama.server.bodies import MAX_BODY_BYTES, MAX_DEPTH

# (path, a minimal valid body, the API family whose error envelope it answers in)
ROUTES: list[tuple[str, dict[str, Any], str]] = [
    ("/api/generate", {"model": MODEL, "prompt": "hi"}, "ollama"),
    ("/api/chat", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, "ollama"),
    ("/api/embed", {"model": MODEL, "input": "hi"}, "ollama"),
    ("/api/embeddings", {"model": MODEL, "prompt": "hi"}, "ollama"),
    ("/api/create", {"model": "x", "from": MODEL}, "ollama"),
    ("/api/show", {"model": MODEL}, "ollama"),
    ("/api/copy", {"source": MODEL, "destination": "y"}, "ollama"),
    ("/api/pull", {"model": "nothing/here"}, "ollama"),
    ("/api/push", {"model": "nothing/here"}, "ollama"),
    ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, "openai"),
    ("/v1/completions", {"model": MODEL, "prompt": "hi"}, "openai"),
    ("/v1/embeddings", {"model": MODEL, "input": "hi"}, "openai"),
    ("/v1/responses", {"model": MODEL, "input": "hi"}, "openai"),
    ("/v1/messages", {"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]},
     "anthropic"),
    ("/v1/messages/count_tokens", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, "anthropic"),
    ("/api/rerank", {"model": MODEL, "query": "hi", "documents": ["a"]}, "ollama"),
    ("/v1/rerank", {"model": MODEL, "query": "hi", "documents": ["a"]}, "openai"),
    ("/rerank", {"model": MODEL, "query": "hi", "documents": ["a"]}, "openai"),
]


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path) -> Iterator[str]:
    with inference_server(module_models_dir, model_path, parallel=2) as url:
        yield url


def error_message(resp: httpx.Response, family: str) -> str:
    """The message of an error body, checking it has the family's envelope."""
    body = resp.json()
    if family == "ollama":
        assert set(body) == {"error"} and isinstance(body["error"], str), body
        return str(body["error"])
    if family == "openai":
        assert body["error"]["type"] == "invalid_request_error", body
        return str(body["error"]["message"])
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error", body
    return str(body["error"]["message"])


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def request(base: str, method: str, path: str, content: bytes | str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, base + path, content=content, timeout=120,
                         headers={"content-type": "application/json"}, **kwargs)


@pytest.mark.parametrize(("path", "body", "family"), ROUTES, ids=[r[0] for r in ROUTES])
def test_deep_nesting_is_a_400_on_every_route(base: str, path: str, body: dict[str, Any], family: str) -> None:
    # ~1,000 levels used to be a 500 "maximum recursion depth exceeded while deserializing an object".
    for field in ("options", "format", "unknown_field"):
        text = json.dumps(body)[:-1] + f', "{field}": {nested(1000)}}}'
        resp = request(base, "POST", path, text)
        assert resp.status_code == 400, (field, resp.text)
        assert f"nested too deeply: the limit is {MAX_DEPTH} levels" in error_message(resp, family)
    top = request(base, "POST", path, nested(5000))
    assert top.status_code == 400 and "nested too deeply" in error_message(top, family)


def test_nesting_up_to_the_limit_and_brackets_in_strings_are_fine(base: str) -> None:
    ok = {"model": MODEL, "prompt": "[{" * 5000, "options": {"stop": ["]]]"]}, "x": json.loads(nested(MAX_DEPTH - 1))}
    resp = post(base, "/api/generate", {**ok, "options": options(num_predict=1)})
    assert resp.status_code == 200, resp.text
    deep = {"model": MODEL, "x": json.loads(nested(MAX_DEPTH))}
    assert post(base, "/api/show", deep).status_code == 400


def read_response(sock: socket.socket) -> tuple[str, str]:
    """(status line and headers, body) of one HTTP/1.1 response with a Content-Length; the
    server may write the head and the body in separate segments."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, body
        body += chunk
    return head.decode(), body.decode()


def test_delete_route_and_body_size_limit(base: str) -> None:
    resp = request(base, "DELETE", "/api/delete", '{"model": ' + nested(2000) + "}")
    assert resp.status_code == 400 and "nested too deeply" in resp.json()["error"]
    # Announced too large: refused before a byte of the body is read (the client never sends it).
    host = base.removeprefix("http://")
    head = (f"POST /api/show HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n{{")
    with socket.create_connection(("127.0.0.1", int(host.rsplit(":", 1)[1])), timeout=30) as sock:
        sock.sendall(head.encode())
        status, body = read_response(sock)
    assert status.startswith("HTTP/1.1 413")
    assert json.loads(body) == {"error": f"request body too large: the limit is {MAX_BODY_BYTES // 2**20} MiB"}
    # Sent without a length (chunked): refused once it passes the limit.
    chunk = b" " * 2**20

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "x", "pad": "'
        for _ in range(MAX_BODY_BYTES // len(chunk) + 1):
            yield chunk
        yield b'"}'

    try:
        resp = httpx.post(base + "/api/show", content=chunks(), timeout=60)
        assert resp.status_code == 413
    except httpx.HTTPError:
        pass  # the server may answer and close before the client finished sending


WIDE = 2**64 + 7
# (path, body with an integer outside 64 bits, the field the error must name, family)
WIDE_INTS: list[tuple[str, dict[str, Any], str, str]] = [
    ("/api/generate", {"model": MODEL, "prompt": "hi", "options": {"num_predict": WIDE}}, "options.num_predict",
     "ollama"),
    ("/api/generate", {"model": MODEL, "prompt": "hi", "options": {"seed": -WIDE}}, "options.seed", "ollama"),
    ("/api/chat", {"model": MODEL, "messages": [], "options": {"num_ctx": WIDE}}, "options.num_ctx", "ollama"),
    ("/api/generate", {"model": MODEL, "prompt": "hi", "context": [1, WIDE]}, "context[1]", "ollama"),
    ("/api/embed", {"model": MODEL, "input": "hi", "dimensions": WIDE}, "dimensions", "ollama"),
    ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": WIDE},
     "max_tokens", "openai"),
    ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "seed": WIDE},
     "seed", "openai"),
    ("/v1/completions", {"model": MODEL, "prompt": "hi", "max_tokens": -WIDE}, "max_tokens", "openai"),
    ("/v1/embeddings", {"model": MODEL, "input": "hi", "dimensions": WIDE}, "dimensions", "openai"),
    ("/v1/responses", {"model": MODEL, "input": "hi", "max_output_tokens": WIDE}, "max_output_tokens", "openai"),
    ("/v1/messages", {"model": MODEL, "max_tokens": WIDE, "messages": [{"role": "user", "content": "hi"}]},
     "max_tokens", "anthropic"),
    ("/api/rerank", {"model": MODEL, "query": "hi", "documents": ["a"], "top_n": WIDE}, "top_n", "ollama"),
    ("/v1/rerank", {"model": MODEL, "query": "hi", "documents": [{"text": "a", "n": -WIDE}]}, "documents[0].n",
     "openai"),
]


@pytest.mark.parametrize(("path", "body", "field", "family"), WIDE_INTS, ids=[f"{w[0]}:{w[2]}" for w in WIDE_INTS])
def test_integers_outside_64_bits_are_a_400_naming_the_field(base: str, path: str, body: dict[str, Any],
                                                            field: str, family: str) -> None:
    # These used to be a 500 "can't serialize ints < -2**63 or > 2**64 - 1" (nothing logged).
    resp = post(base, path, body)
    assert resp.status_code == 400, resp.text
    message = error_message(resp, family)
    assert f'"{field}"' in message and "64 bits" in message


def test_huge_float_in_an_integer_option_is_a_400(base: str) -> None:
    resp = post(base, "/api/generate", {"model": MODEL, "prompt": "hi", "options": {"num_predict": 1e300}})
    assert resp.status_code == 400 and "num_predict" in resp.json()["error"], resp.text


def test_echoed_values_are_capped(base: str) -> None:
    # A 10 MB model name used to come back whole in the error.
    name = "a" * 10_000_000
    resp = post(base, "/api/copy", {"source": name, "destination": "ok"})
    assert resp.status_code in (400, 404)
    assert len(resp.content) < 2_000 and "characters)" in resp.json()["error"]
    resp = post(base, "/api/generate", {"model": name, "prompt": "hi"})
    assert resp.status_code in (400, 404) and len(resp.content) < 2_000


def test_negative_num_predict_is_capped_at_ten_contexts(base: str) -> None:
    # A model counting on and on in a small context used to stream forever (2,500 tokens in 38 s and on).
    body = {"model": MODEL, "prompt": "1, 2, 3,", "raw": True, "stream": False,
            "options": options(num_ctx=16, num_predict=-1, temperature=0)}
    resp = post(base, "/api/generate", body)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert (data["done_reason"], data["eval_count"]) == ("length", 160)


def test_ps_lists_one_entry_per_model(base: str, client: ollama.Client) -> None:
    client.generate(MODEL, "hi", options=options(num_predict=1))
    client.embed(MODEL, "hi")
    models = httpx.get(base + "/api/ps").json()["models"]
    names = [m["name"] for m in models]
    assert len(names) == len(set(names)) and any(n.startswith(MODEL) for n in names), models


def test_openapi_documents_every_route(base: str) -> None:
    from pyllama.config import Config
    from pyllama.server.app import create_app

    doc = httpx.get(base + "/schema/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    served = set()
    for route in create_app(Config()).routes:
        if all(h.include_in_schema is False for h in getattr(route, "route_handlers", [])):
            continue  # not API: the web chat's static files (/ui)
        for method in route.methods:
            if method not in ("OPTIONS",) and route.path != "/schema/openapi.json":
                served.add((method.lower(), route.path.replace("{digest:str}", "{digest}").replace("{model:str}",
                                                                                                    "{model}")))
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert served == documented
    components = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "200" in op["responses"] or "201" in op["responses"], (method, path)
            if method in ("post", "delete") and path != "/api/blobs/{digest}":
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                assert ref.rsplit("/", 1)[1] in components, (method, path)
            for code, answer in op["responses"].items():
                if code.startswith(("4", "5")):
                    assert answer["content"]["application/json"]["schema"]["$ref"], (method, path, code)
    generate = components["GenerateRequest"]["properties"]
    assert {"model", "prompt", "options", "format", "stream"} <= set(generate)


HALF = "Send me one emoji"  # SmolLM2's first answer token is the first two bytes of an emoji
HALF_ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("/api/generate", {"model": MODEL, "raw": True, "options": {"num_predict": 1, "temperature": 0},
                       "prompt": f"<|im_start|>user\n{HALF}<|im_end|>\n<|im_start|>assistant\n"}),
    ("/api/chat", {"model": MODEL, "messages": [{"role": "user", "content": HALF}],
                   "options": {"num_predict": 1, "temperature": 0}}),
    ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": HALF}], "max_tokens": 1,
                              "temperature": 0}),
    ("/v1/responses", {"model": MODEL, "input": HALF, "max_output_tokens": 1, "temperature": 0}),
    ("/v1/messages", {"model": MODEL, "messages": [{"role": "user", "content": HALF}], "max_tokens": 1,
                      "temperature": 0}),
]


def test_a_generation_stopping_inside_a_character_drops_its_bytes(base: str) -> None:
    # The one token generated is half an emoji (its bytes are F0 9F) ...
    path, body = HALF_ROUTES[0]
    probe = post(base, path, {**body, "stream": False, "logprobs": True}).json()
    assert probe["logprobs"][0]["bytes"] == [0xF0, 0x9F], probe
    # ... which used to come back as "\ufffd"; now it is dropped, on every route, streamed or not.
    for path, body in HALF_ROUTES:
        for stream in (False, True):
            resp = post(base, path, {**body, "stream": stream})
            assert resp.status_code == 200, (path, resp.text)
            assert "\ufffd" not in resp.text and "\\ufffd" not in resp.text.lower(), (path, stream, resp.text)
    answer = post(base, "/api/chat", {**HALF_ROUTES[1][1], "stream": False}).json()
    assert answer["message"]["content"] == "" and answer["eval_count"] == 1
