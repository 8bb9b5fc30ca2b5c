"""Prometheus /metrics through a real `pyllama serve`, read with prometheus_client's text parser
before and after requests: counters move by what the responses themselves report."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest
from gguf import GGUFReader

from inferenceutil import MODEL, options
from opsutil import Served, moved, pyllama_serve, scrape, value
from pyllama.config import Config
from pyllama.server.metrics import metrics_enabled

PARALLEL = 2
NAME = f"{MODEL}:latest"  # models are labelled with the name /api/ps lists


@pytest.fixture(scope="module")
def served(module_models_dir: Path, model_path: Path) -> Iterator[Served]:
    env = {"PYLLAMA_MODELS": str(module_models_dir), "PYLLAMA_NUM_PARALLEL": str(PARALLEL)}
    with pyllama_serve(env) as served:
        client = ollama.Client(host=served.base)
        client.create(MODEL, files={"model.gguf": client.create_blob(model_path)})
        yield served


@pytest.fixture(scope="module")
def client(served: Served) -> ollama.Client:
    return ollama.Client(host=served.base, timeout=120)


def wait_for(predicate: object, what: str) -> None:
    for _ in range(300):
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def test_generate_moves_the_counters_by_what_it_reports(served: Served, client: ollama.Client) -> None:
    before = scrape(served.base)
    out = client.generate(MODEL, "Count to five.", options=options(num_predict=6))
    after = scrape(served.base)

    assert moved(before, after, "pyllama_http_requests_total", route="/api/generate", method="POST",
                 status="200") == 1
    assert moved(before, after, "pyllama_http_request_duration_seconds_count", route="/api/generate") == 1
    assert moved(before, after, "pyllama_prompt_tokens_total", model=NAME) == out.prompt_eval_count
    assert moved(before, after, "pyllama_generation_tokens_total", model=NAME) == out.eval_count == 6
    assert moved(before, after, "pyllama_time_to_first_token_seconds_count", model=NAME) == 1
    assert moved(before, after, "pyllama_generation_tokens_per_second_count", model=NAME) == 1
    assert moved(before, after, "pyllama_model_requests_total", model=NAME, outcome="done") == 1
    # The first request loaded the model: one load, timed.
    assert value(after, "pyllama_model_loads_total", model=NAME, result="ok") == 1
    assert value(after, "pyllama_model_load_duration_seconds_count", model=NAME) == 1
    assert value(after, "pyllama_model_load_duration_seconds_sum", model=NAME) > 0

    # The runner as it is now: loaded, idle, its KV cache holding this prompt and answer.
    runner = {"model": NAME, "role": "generate"}
    assert value(after, "pyllama_models_loaded") == 1
    assert value(after, "pyllama_queue_depth") == 0
    assert value(after, "pyllama_slots", **runner) == PARALLEL
    assert value(after, "pyllama_slots_busy", **runner) == 0
    [ps] = client.ps().models
    assert value(after, "pyllama_kv_cache_cells", **runner) == ps.context_length == 512 * PARALLEL
    used = value(after, "pyllama_kv_cache_cells_used", **runner)
    assert out.prompt_eval_count <= used <= out.prompt_eval_count + out.eval_count


def test_streamed_chat_and_embeddings(served: Served, client: ollama.Client) -> None:
    before = scrape(served.base)
    parts = list(client.chat(MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True,
                             options=options(num_predict=4)))
    embedded = client.embed(MODEL, input=["one sentence", "another one"], options=options())
    after = scrape(served.base)

    final = parts[-1]
    assert moved(before, after, "pyllama_http_requests_total", route="/api/chat", method="POST", status="200") == 1
    assert moved(before, after, "pyllama_http_requests_total", route="/api/embed", method="POST", status="200") == 1
    assert moved(before, after, "pyllama_time_to_first_token_seconds_count", model=NAME) == 1
    assert moved(before, after, "pyllama_generation_tokens_total", model=NAME) == final.eval_count
    assert moved(before, after, "pyllama_prompt_tokens_total", model=NAME) == (
        final.prompt_eval_count + embedded.prompt_eval_count)
    assert moved(before, after, "pyllama_model_requests_total", model=NAME, outcome="done") == 2
    # Embeddings have a runner of their own.
    assert value(after, "pyllama_slots", model=NAME, role="embed") >= 1
    assert value(after, "pyllama_slots_busy", model=NAME, role="embed") == 0
    assert value(after, "pyllama_models_loaded") == 2


def test_routes_are_labelled_by_template_and_unknown_paths_by_one_label(served: Served) -> None:
    before = scrape(served.base)
    assert httpx.get(served.base + "/no/such/path").status_code == 404
    assert httpx.post(served.base + "/api/show", json={"model": "missing"}).status_code == 404
    assert httpx.head(served.base + "/").status_code == 200
    after = scrape(served.base)
    assert moved(before, after, "pyllama_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert moved(before, after, "pyllama_http_requests_total", route="/api/show", method="POST", status="404") == 1
    assert moved(before, after, "pyllama_http_requests_total", route="/", method="HEAD", status="200") == 1
    # The scrape before this one counted itself once it had been answered.
    assert moved(before, after, "pyllama_http_requests_total", route="/metrics", method="GET", status="200") == 1


def test_a_killed_runner_counts_as_a_restart(served: Served, client: ollama.Client) -> None:
    client.generate(MODEL, "Hello", options=options(num_predict=1))
    before = scrape(served.base)
    pids = served.runner_pids()
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: value(scrape(served.base), "pyllama_models_loaded") == 0, "the scheduler forgot the runners")
    after = scrape(served.base)
    assert moved(before, after, "pyllama_runner_restarts_total", model=NAME) == len(pids)
    # The next request loads it again.
    client.generate(MODEL, "Hello", options=options(num_predict=1))
    again = scrape(served.base)
    assert moved(after, again, "pyllama_model_loads_total", model=NAME, result="ok") == 1


def test_a_full_queue_counts_503s(module_models_dir: Path) -> None:
    env = {"PYLLAMA_MODELS": str(module_models_dir), "PYLLAMA_MAX_QUEUE": "0"}
    with pyllama_serve(env) as busy:
        before = scrape(busy.base)
        response = httpx.post(busy.base + "/api/generate", json={"model": MODEL, "prompt": "hi"}, timeout=60)
        assert response.status_code == 503
        after = scrape(busy.base)
    assert moved(before, after, "pyllama_queue_rejections_total") == 1
    assert moved(before, after, "pyllama_http_requests_total", route="/api/generate", method="POST",
                 status="503") == 1


def test_switched_off_by_flag_and_environment(module_models_dir: Path) -> None:
    for env, flags in (({"PYLLAMA_METRICS": "0"}, ()), ({}, ("--metrics", "false"))):
        with pyllama_serve({"PYLLAMA_MODELS": str(module_models_dir), **env}, *flags) as off:
            assert httpx.get(off.base + "/metrics").status_code == 404
            assert httpx.get(off.base + "/api/version").status_code == 200


def test_default_is_on_except_on_a_public_address_without_keys() -> None:
    assert metrics_enabled(Config.from_env({}), keys_enabled=False)
    public = Config.from_env({"PYLLAMA_HOST": "0.0.0.0"})
    assert not metrics_enabled(public, keys_enabled=False)
    assert metrics_enabled(public, keys_enabled=True)
    assert metrics_enabled(Config.from_env({"PYLLAMA_HOST": "0.0.0.0", "PYLLAMA_METRICS": "1"}), keys_enabled=False)
    assert not metrics_enabled(Config.from_env({"PYLLAMA_METRICS": "false"}), keys_enabled=True)


def test_a_running_stream_holds_a_slot(served: Served) -> None:
    body = {"model": MODEL, "prompt": "Tell a long story.", "options": options(num_predict=200)}
    with httpx.stream("POST", served.base + "/api/generate", json=body, timeout=120) as response:
        lines = response.iter_lines()
        next(lines)  # the first token is out: the request holds its slot
        during = scrape(served.base)
        assert value(during, "pyllama_slots_busy", model=NAME, role="generate") == 1
        assert value(during, "pyllama_kv_cache_cells_used", model=NAME, role="generate") > 0
    # Leaving early cancelled it: the slot is free again once the runner has stopped it.
    wait_for(lambda: value(scrape(served.base), "pyllama_slots_busy", model=NAME, role="generate") == 0,
             "the cancelled request released its slot")
    wait_for(lambda: value(scrape(served.base), "pyllama_model_requests_total", model=NAME,
                           outcome="cancelled") >= 1, "the cancellation was counted")


def test_a_failed_load_is_counted(served: Served, client: ollama.Client, model_path: Path, tmp_path: Path) -> None:
    # SmolLM2 with one tensor's declared shape halved: the header, vocabulary and tensor bounds
    # still read (what the server checks), but loading the weights in the runner fails.
    broken = tmp_path / "broken.gguf"
    shutil.copy(model_path, broken)
    reader = GGUFReader(broken, "r+")
    [norm] = [t for t in reader.tensors if t.name == "output_norm.weight"]
    norm.field.parts[3][0] //= 2
    del reader
    client.create("broken", files={"model.gguf": client.create_blob(broken)})
    before = scrape(served.base)
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate("broken", "Hi", options=options(num_predict=1))
    assert "unable to load model" in str(caught.value) and "output_norm.weight" in str(caught.value)
    after = scrape(served.base)
    assert moved(before, after, "pyllama_model_loads_total", model="broken:latest", result="error") == 1
    assert moved(before, after, "pyllama_model_load_duration_seconds_count", model="broken:latest") == 0
