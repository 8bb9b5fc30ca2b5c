"""LoRA adapters end to end: a model created with an adapter answers with it
(as the low-level binding computes it), /api/ps and /api/show list it, a
request's ``lora`` option (native and /v1) sets its scale, and an adapter
that does not fit the base model fails create with both names."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from ggufutil import write_tiny_llama
from inferenceutil import MODEL, create_with_cli, generate_bare, ndjson, post
from lorautil import assert_same_greedy, lora_for_tiny, reference_greedy
from pyllama import _native
from serverutil import start_server

PARALLEL = 2
NUM_CTX = 512
TUNED = "tuned"


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path, lora_path: Path) -> Iterator[str]:
    """SmolLM2 as ``smol`` and, with the test adapter, as ``tuned``; every
    request gets num_ctx 512 (also /v1 ones, which cannot set it)."""
    env = {"PYLLAMA_MODELS": str(module_models_dir), "PYLLAMA_NUM_THREADS": "1",
           "PYLLAMA_NUM_PARALLEL": str(PARALLEL), "PYLLAMA_CONTEXT_LENGTH": str(NUM_CTX)}
    with start_server(env) as url:
        client = ollama.Client(host=url)
        client.create(MODEL, files={"model.gguf": client.create_blob(model_path)})
        client.create(TUNED, from_=MODEL, adapters={"lora.gguf": client.create_blob(lora_path)})
        yield url


_generate = functools.partial(generate_bare, num_predict=16)


def _generated(result: dict[str, Any]) -> list[int]:
    return result["context"][result["prompt_eval_count"]:]


def test_adapter_model_answers_as_the_binding_computes(base: str, model_path: Path, lora_path: Path) -> None:
    prompt = "The capital of France is"
    tuned = _generate(base, TUNED, prompt)
    plain = _generate(base, MODEL, prompt)
    assert tuned["response"] != plain["response"]

    model = _native.Model(model_path)
    adapter = model.load_lora(lora_path)
    tokens = model.tokenize(prompt)
    assert tuned["prompt_eval_count"] == len(tokens)
    for scales, result in (([(adapter, 1.0)], tuned), ([], plain)):
        want, rows = reference_greedy(model, scales, tokens, 16, n_ctx=NUM_CTX * PARALLEL, n_seq_max=PARALLEL)
        assert_same_greedy(_generated(result), want, rows)


def test_modelfile_adapter_via_the_cli(base: str, model_path: Path, lora_path: Path, tmp_path: Path) -> None:
    (tmp_path / "my-lora.gguf").write_bytes(lora_path.read_bytes())
    (tmp_path / "Modelfile").write_text(f"FROM {MODEL}\nADAPTER ./my-lora.gguf\n")
    create_with_cli(base, "from-modelfile", tmp_path)
    prompt = "A good name for a cat is"
    result = _generate(base, "from-modelfile", prompt)
    model = _native.Model(model_path)
    tokens = model.tokenize(prompt)
    want, rows = reference_greedy(model, [(model.load_lora(lora_path), 1.0)], tokens, 16,
                                  n_ctx=NUM_CTX * PARALLEL, n_seq_max=PARALLEL)
    assert_same_greedy(_generated(result), want, rows)
    plain, _ = reference_greedy(model, [], tokens, 16, n_ctx=NUM_CTX * PARALLEL, n_seq_max=PARALLEL)
    assert want != plain


def test_ps_and_show_report_the_adapter(base: str) -> None:
    _generate(base, TUNED, "Hello", num_predict=1)
    _generate(base, MODEL, "Hello", num_predict=1)
    loaded = {m["name"]: m for m in httpx.get(base + "/api/ps").json()["models"]}
    assert set(loaded) == {"smol:latest", "tuned:latest"}  # one runner each
    digest = loaded["tuned:latest"]["adapters"][0]["digest"]
    assert loaded["tuned:latest"]["adapters"] == [{"id": 0, "digest": digest}] and digest.startswith("sha256:")
    assert "adapters" not in loaded["smol:latest"]

    shown = post(base, "/api/show", {"model": TUNED}).json()
    assert shown["adapters"] == [{"id": 0, "digest": digest}]
    assert any(line.startswith("ADAPTER ") and line.endswith(digest.replace(":", "-"))
               for line in shown["modelfile"].splitlines())
    assert "adapters" not in post(base, "/api/show", {"model": MODEL}).json()


def test_native_lora_option_sets_the_scale(base: str) -> None:
    prompt = "My favourite food is"
    plain = _generate(base, MODEL, prompt)
    off = _generate(base, TUNED, prompt, lora=[{"id": 0, "scale": 0}])
    on = _generate(base, TUNED, prompt + " ", lora=[{"id": 0, "scale": 1}])
    assert off["response"] == plain["response"]
    assert on["response"] != _generate(base, MODEL, prompt + " ")["response"]


def test_v1_lora_field_sets_the_scale(base: str) -> None:
    def complete(model: str, prompt: str, **extra: Any) -> str:
        body = {"model": model, "prompt": prompt, "temperature": 0, "max_tokens": 16, **extra}
        resp = post(base, "/v1/completions", body)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["choices"][0]["text"])

    prompt = "Three things to pack for a trip:"
    assert complete(TUNED, prompt, lora=[{"id": 0, "scale": 0.0}]) == complete(MODEL, prompt)
    prompt = "The best way to learn a language is"
    assert complete(TUNED, prompt) != complete(MODEL, prompt)

    messages = [{"role": "user", "content": "Name a colour."}]
    chat = [post(base, "/v1/chat/completions", {"model": m, "messages": messages, "temperature": 0,
                                                 "max_tokens": 12, **extra}).json()["choices"][0]["message"]
            for m, extra in ((TUNED, {"lora": [{"id": 0, "scale": 0}]}), (MODEL, {}))]
    assert chat[0]["content"] == chat[1]["content"]


@pytest.mark.parametrize(("lora", "status", "message"), [
    ([{"id": 3, "scale": 1}], 400, "invalid LoRA adapter id 3: the model has 1 adapter(s)"),
    ([{"id": 0}], 400, 'each "lora" entry must be an object {"id": integer, "scale": number}'),
    ({"id": 0, "scale": 1}, 400, 'option "lora" must be of type array'),
])
def test_bad_lora_option_is_a_400(base: str, lora: Any, status: int, message: str) -> None:
    body = {"model": TUNED, "prompt": "Hi", "stream": False, "options": {"num_predict": 1, "lora": lora}}
    resp = post(base, "/api/generate", body)
    assert (resp.status_code, resp.json()) == (status, {"error": message})


def test_bad_v1_lora_is_an_openai_400(base: str) -> None:
    resp = post(base, "/v1/completions", {"model": TUNED, "prompt": "Hi", "lora": [{"id": 1, "scale": 1}]})
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == "invalid LoRA adapter id 1: the model has 1 adapter(s)"


def test_lora_is_not_a_stored_parameter(base: str) -> None:
    resp = post(base, "/api/create", {"model": "x", "from": MODEL, "parameters": {"lora": [{"id": 0, "scale": 1}]},
                                      "stream": False})
    assert (resp.status_code, resp.json()) == (400, {"error": "parameter 'lora' can only be set in a request's options"})


def test_adapter_that_does_not_fit_fails_create(base: str, tmp_path: Path) -> None:
    client = ollama.Client(host=base)
    foreign = lora_for_tiny(write_tiny_llama(tmp_path / "tiny.gguf"), tmp_path / "tiny-lora.gguf")
    digest = client.create_blob(foreign)
    _, lines = ndjson(base, "/api/create", {"model": "broken", "from": MODEL, "adapters": {"tiny-lora.gguf": digest}})
    error = lines[-1]["error"]
    assert error.startswith('adapter "tiny-lora.gguf" does not fit the base model "smol": tensor ')
    assert "has shape" in error
    assert post(base, "/api/show", {"model": "broken"}).status_code == 404


def test_lora_option_on_embeddings_is_refused(base: str) -> None:
    resp = post(base, "/api/embed", {"model": TUNED, "input": "hi", "options": {"lora": [{"id": 0, "scale": 0}]}})
    assert resp.status_code == 400
    assert "the lora option applies to generation" in resp.json()["error"]
