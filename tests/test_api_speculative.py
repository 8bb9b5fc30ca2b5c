"""Speculative decoding end to end: a model created with a DRAFT (Modelfile
via the CLI) answers exactly as its base does, concurrently too, and reports
its drafts in the final record; /api/ps shows the draft; prompt lookup is a
request option; a draft with another vocabulary fails create."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from ggufutil import write_tiny_llama
from inferenceutil import MODEL, create_with_cli, generate_bare, ndjson, post
from serverutil import start_server

FAST = "fast"
QUOTE = "The quick brown fox jumps over the lazy dog while the small red hen bakes bread for the farm."
PROMPTS = ("Once upon a time, in a small village,", "The three primary colours are")


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path, draft_path: Path,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SmolLM2 as ``smol``, and with the test draft (Modelfile DRAFT) as ``fast``."""
    env = {"PYLLAMA_MODELS": str(module_models_dir), "PYLLAMA_NUM_THREADS": "1", "PYLLAMA_NUM_PARALLEL": "2",
           "PYLLAMA_CONTEXT_LENGTH": "512"}
    with start_server(env) as url:
        client = ollama.Client(host=url)
        client.create(MODEL, files={"model.gguf": client.create_blob(model_path)})
        work = tmp_path_factory.mktemp("modelfile")
        (work / "draft.gguf").symlink_to(draft_path)
        (work / "Modelfile").write_text(f"FROM {MODEL}\nDRAFT ./draft.gguf\nPARAMETER draft_p_min 0\n")
        create_with_cli(url, FAST, work)
        yield url


_generate = functools.partial(generate_bare, num_predict=24)


def test_draft_model_output_is_the_base_output(base: str) -> None:
    plain = [_generate(base, MODEL, p) for p in PROMPTS]
    with ThreadPoolExecutor(len(PROMPTS)) as pool:  # two slots, verified in one batch per step
        drafted = list(pool.map(lambda p: _generate(base, FAST, p), PROMPTS))
    for want, got in zip(plain, drafted):
        assert got["context"] == want["context"] and got["response"] == want["response"]
        assert "draft_count" not in want
        assert 0 < got["draft_accepted_count"] <= got["draft_count"]


def test_ps_shows_the_draft(base: str) -> None:
    _generate(base, FAST, "Hi", num_predict=1)
    digest = ollama.Client(host=base).show(FAST).modelfile.split("DRAFT ")[1].split()[0]
    loaded = {m["name"]: m for m in httpx.get(base + "/api/ps").json()["models"]}
    assert loaded["fast:latest"]["draft"]["digest"].replace(":", "-") in digest
    assert "draft" not in loaded.get("smol:latest", {})


def test_streamed_chat_reports_drafts_in_the_final_line(base: str) -> None:
    resp, lines = ndjson(base, "/api/chat", {"model": FAST, "messages": [{"role": "user", "content": "Count to ten."}],
                                             "options": {"temperature": 0, "num_predict": 20}})
    assert resp.status_code == 200
    assert lines[-1]["done"] and lines[-1]["draft_count"] >= lines[-1]["draft_accepted_count"] > 0
    assert all("draft_count" not in line for line in lines[:-1])


def test_ngram_lookup_is_a_request_option(base: str) -> None:
    prompt = "\n".join([QUOTE] * 4) + "\n"
    plain = _generate(base, MODEL, prompt, num_predict=40)
    looked_up = _generate(base, MODEL, prompt, num_predict=40, speculative="ngram", draft_num_predict=8)
    assert looked_up["context"] == plain["context"]
    assert looked_up["draft_accepted_count"] > 10


@pytest.mark.parametrize(("options", "message"), [
    ({"speculative": "draft"}, 'speculative "draft" needs a model with a draft model'),
    ({"speculative": "eagle"}, "speculative must be one of auto, draft, ngram, off"),
    ({"draft_p_min": 2}, "draft_p_min must be between 0 and 1"),
])
def test_bad_speculative_options_are_a_400(base: str, options: dict[str, Any], message: str) -> None:
    resp = post(base, "/api/generate", {"model": MODEL, "prompt": "Hi", "stream": False, "options": options})
    assert resp.status_code == 400 and message in resp.json()["error"], resp.text


def test_draft_with_another_vocabulary_fails_create(base: str, tmp_path: Path) -> None:
    client = ollama.Client(host=base)
    digest = client.create_blob(write_tiny_llama(tmp_path / "tiny.gguf"))
    _, lines = ndjson(base, "/api/create", {"model": "broken", "from": MODEL, "draft_files": {"tiny.gguf": digest}})
    error = lines[-1]["error"]
    assert error.startswith('draft model "tiny.gguf" does not share the vocabulary of the model "smol": ')
    assert post(base, "/api/show", {"model": "broken"}).status_code == 404
