"""A model split across two loopback ``pyllama rpc-server``s and the local
CPU, through the HTTP API: the same greedy text as unsplit, /api/ps per
device, a server down at load, and one killed mid-stream."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import ollama

from inferenceutil import MODEL
from rpcutil import rpc_server
from serverutil import free_port, start_server

PROMPT = "List the planets of the solar system, one per line."
# num_gpu 20: of SmolLM2's 30 layers, 20 go to the RPC devices (split by their free memory), 10 stay here.
SPLIT = {"num_ctx": 512, "temperature": 0, "seed": 1, "num_predict": 24, "num_gpu": 20}


def generate(base: str, options: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.post(base + "/api/generate", json={"model": MODEL, "prompt": PROMPT, "raw": True,
                                                   "stream": False, "options": options}, timeout=300)
    assert resp.status_code == 200, resp.text
    return resp.json()


def loaded_devices(base: str) -> list[dict[str, Any]]:
    models = httpx.get(base + "/api/ps", timeout=30).json()["models"]
    assert len(models) == 1, models
    return list(models[0].get("devices", []))


@contextmanager
def split_server(models_dir: Path, model_path: Path, servers: list[str], parallel: int = 1,
                 **env_extra: str) -> Iterator[str]:
    env = {"PYLLAMA_MODELS": str(models_dir), "PYLLAMA_NUM_THREADS": "1", "PYLLAMA_NUM_PARALLEL": str(parallel),
           "PYLLAMA_RPC_SERVERS": ",".join(servers), **env_extra}
    with start_server(env) as base:
        client = ollama.Client(host=base)
        client.create(MODEL, files={"model.gguf": client.create_blob(model_path)})
        yield base


def test_split_model_answers_as_unsplit_and_ps_shows_each_device(models_dir: Path, model_path: Path) -> None:
    with ExitStack() as stack:
        (a, _), (b, _) = stack.enter_context(rpc_server()), stack.enter_context(rpc_server())
        base = stack.enter_context(split_server(models_dir, model_path, [a, b]))
        split = generate(base, SPLIT)
        devices = loaded_devices(base)
        by_endpoint = {d["description"]: d for d in devices}
        assert by_endpoint[a]["name"] == "RPC0" and by_endpoint[b]["name"] == "RPC1", devices
        assert by_endpoint[a]["size"] > 1 << 20 and by_endpoint[b]["size"] > 1 << 20
        assert [d["name"] for d in devices if d["name"] == "CPU" and d["size"] > 1 << 20] == ["CPU"], devices
        chat = httpx.post(base + "/v1/chat/completions", timeout=300, json={
            "model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8, "temperature": 0})
        assert chat.status_code == 200, chat.text
        assert chat.json()["choices"][0]["message"]["content"]
        unsplit = generate(base, {**SPLIT, "num_gpu": 0})  # a load option: the runner reloads, all on this CPU
        assert {d["description"] for d in loaded_devices(base)}.isdisjoint({a, b})
    assert split["eval_count"] == unsplit["eval_count"] == 24
    assert split["response"] == unsplit["response"]


def test_tensor_split_sets_each_devices_share_and_one_runner_holds_the_servers_at_a_time(
        models_dir: Path, model_path: Path) -> None:
    with ExitStack() as stack:
        (a, _), (b, _) = stack.enter_context(rpc_server()), stack.enter_context(rpc_server())
        base = stack.enter_context(split_server(models_dir, model_path, [a, b], PYLLAMA_TENSOR_SPLIT="1,3"))
        generate(base, SPLIT)
        sizes = {d["description"]: d["size"] for d in loaded_devices(base)}
        assert sizes[b] > 2 * sizes[a] > 0
        # An embedding runner of the same model is a second runner: ggml-rpc's server serves one
        # client at a time, so the idle generation runner is unloaded first instead of both hanging.
        resp = httpx.post(base + "/api/embed", json={"model": MODEL, "input": "hello",
                                                    "options": {"num_ctx": 512, "num_gpu": 20}}, timeout=300)
        assert resp.status_code == 200, resp.text
        assert len(resp.json()["embeddings"][0]) == 576
        assert len(httpx.get(base + "/api/ps", timeout=30).json()["models"]) == 1
        assert generate(base, SPLIT)["eval_count"] == 24


def test_a_server_down_at_load_fails_the_load_naming_it(models_dir: Path, model_path: Path) -> None:
    down = f"127.0.0.1:{free_port()}"
    with split_server(models_dir, model_path, [down]) as base:
        resp = httpx.post(base + "/api/generate", json={"model": MODEL, "prompt": "Hi", "stream": False,
                                                       "options": SPLIT}, timeout=120)
        assert resp.status_code == 500
        assert f"RPC server {down} is not reachable" in resp.json()["error"]
        assert httpx.get(base + "/api/ps", timeout=30).json()["models"] == []


def _stream(base: str, started: threading.Event, lines: list[dict[str, Any]]) -> None:
    body = {"model": MODEL, "prompt": PROMPT, "raw": True, "options": {**SPLIT, "num_predict": 400}}
    with httpx.stream("POST", base + "/api/generate", json=body, timeout=300) as resp:
        for line in resp.iter_lines():
            if line:
                lines.append(json.loads(line))
                started.set()


def test_a_server_killed_mid_stream_ends_every_stream_and_the_next_load_goes_without_it(
        models_dir: Path, model_path: Path) -> None:
    with ExitStack() as stack:
        (a, _), (b, doomed) = stack.enter_context(rpc_server()), stack.enter_context(rpc_server())
        base = stack.enter_context(split_server(models_dir, model_path, [a, b], parallel=2))
        streams: list[list[dict[str, Any]]] = [[], []]
        started = [threading.Event(), threading.Event()]
        threads = [threading.Thread(target=_stream, args=(base, started[i], streams[i])) for i in range(2)]
        for thread in threads:
            thread.start()
        for event in started:
            assert event.wait(240), "no stream started"
        doomed.kill()
        for thread in threads:
            thread.join(240)
            assert not thread.is_alive(), "a stream did not end after its RPC server died"
        for lines in streams:
            assert "error" in lines[-1], lines[-1]
            assert "model runner has unexpectedly stopped" in lines[-1]["error"]
            assert f"RPC server {b} is not answering" in lines[-1]["error"]
            assert not any(line.get("done") for line in lines)
        # The next request loads again, on the surviving server and this CPU.
        after = generate(base, SPLIT)
        assert after["eval_count"] == 24
        assert {d["description"] for d in loaded_devices(base) if d["name"].startswith("RPC")} == {a}


def test_a_stalled_server_is_cut_off_by_the_watchdog_and_left_out_of_the_next_load(
        models_dir: Path, model_path: Path) -> None:
    with ExitStack() as stack:
        (a, _), (b, stalled) = stack.enter_context(rpc_server()), stack.enter_context(rpc_server())
        base = stack.enter_context(split_server(models_dir, model_path, [a, b], PYLLAMA_RUNNER_WATCHDOG="5s"))
        lines: list[dict[str, Any]] = []
        started = threading.Event()
        thread = threading.Thread(target=_stream, args=(base, started, lines))
        thread.start()
        assert started.wait(240), "the stream did not start"
        os.kill(stalled.pid, signal.SIGSTOP)  # answers nothing, closes nothing: ggml-rpc would wait forever
        stack.callback(os.kill, stalled.pid, signal.SIGCONT)
        thread.join(240)
        assert not thread.is_alive(), "the stream hung on a stalled RPC server"
        assert "made no progress" in lines[-1].get("error", ""), lines[-1]
        after = generate(base, SPLIT)  # b's probe times out; a runner lost it, so the load goes without it
        assert after["eval_count"] == 24
        assert {d["description"] for d in loaded_devices(base) if d["name"].startswith("RPC")} == {a}
