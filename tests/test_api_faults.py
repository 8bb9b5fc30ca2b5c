"""Faults through a real server: a stuck runner is stopped by the watchdog, a corrupt model is refused
with its reason (at create, and at load when the blob went bad later), a cold start loads a model's
vocabulary once however many requests arrive together."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from inferenceutil import MODEL, options, post
from serverutil import start_server


def runner_pids(server_port: int) -> list[int]:
    """PIDs of the runner processes of the server listening on ``server_port`` (its children)."""
    server = [pid for pid, cmd in _processes() if "pyllama.server.app:create_app" in cmd
              and f"--port\0{server_port}\0" in cmd + "\0"]
    assert len(server) == 1, server
    return [pid for pid, cmd in _processes() if "pyllama.runner" in cmd and _parent(pid) == server[0]]


def _processes() -> Iterator[tuple[int, str]]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                yield int(entry), Path(f"/proc/{entry}/cmdline").read_text()
            except OSError:
                continue


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat.rsplit(")", 1)[1].split()[1])


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


@pytest.fixture
def watched(models_dir: Path, model_path: Path) -> Iterator[str]:
    env = {"PYLLAMA_MODELS": str(models_dir), "PYLLAMA_NUM_THREADS": "1", "PYLLAMA_RUNNER_WATCHDOG": "10s"}
    with start_server(env) as base:
        client = ollama.Client(host=base)
        client.create(MODEL, files={"model.gguf": client.create_blob(model_path)})
        yield base


def test_watchdog_stops_a_stuck_runner_and_the_next_request_gets_a_new_one(watched: str) -> None:
    body = {"model": MODEL, "prompt": "Count: 1, 2, 3,", "options": options(num_predict=4)}
    first = post(watched, "/api/generate", {**body, "stream": False})
    assert first.status_code == 200, first.text
    [pid] = runner_pids(_port(watched))
    # Stopped in the middle of a stream: the stream ends with the watchdog's error as its last line.
    long = {**body, "options": options(num_predict=400)}
    lines = []
    try:
        with httpx.stream("POST", watched + "/api/generate", json=long, timeout=120) as resp:
            for line in resp.iter_lines():
                if line:
                    lines.append(json.loads(line))
                    if len(lines) == 1:
                        os.kill(pid, signal.SIGSTOP)
    finally:
        _resume(pid)
    assert "error" in lines[-1], lines[-1]
    assert "made no progress" in lines[-1]["error"] and "PYLLAMA_RUNNER_WATCHDOG=10s" in lines[-1]["error"]
    # The next request gets a new runner.
    again = post(watched, "/api/generate", {**body, "stream": False})
    assert again.status_code == 200, again.text
    [new_pid] = runner_pids(_port(watched))
    assert new_pid != pid
    # A request sent to a runner that is already stuck is not lost: it runs on a fresh one.
    os.kill(new_pid, signal.SIGSTOP)
    try:
        late = post(watched, "/api/generate", {**body, "stream": False})
    finally:
        _resume(new_pid)
    assert late.status_code == 200, late.text
    assert runner_pids(_port(watched)) not in ([], [new_pid])


def _resume(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass  # the watchdog killed it


def test_truncated_gguf_is_refused_at_create_naming_the_tensor(server: str, model_path: Path,
                                                              tmp_path: Path) -> None:
    client = ollama.Client(host=server)
    data = model_path.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) * 9 // 10])
    digest = client.create_blob(cut)
    resp = post(server, "/api/create", {"model": "cut", "files": {"model.gguf": digest}, "stream": False})
    assert resp.status_code == 400
    message = resp.json()["error"]
    assert "tensor '" in message and "data is not within the file bounds" in message, message
    assert httpx.get(server + "/api/tags").json()["models"] == []


def test_a_blob_gone_bad_after_create_fails_with_llama_cpps_reason(server: str, model_path: Path,
                                                                   models_dir: Path) -> None:
    client = ollama.Client(host=server)
    digest = client.create_blob(model_path)
    client.create("good", files={"model.gguf": digest})
    blob = models_dir / "blobs" / digest.replace(":", "-")
    size = blob.stat().st_size
    with open(blob, "r+b") as handle:
        handle.truncate(size * 9 // 10)
    for path, body in (("/api/generate", {"model": "good", "prompt": "hi"}),
                       ("/api/chat", {"model": "good", "messages": [{"role": "user", "content": "hi"}]}),
                       ("/v1/completions", {"model": "good", "prompt": "hi"})):
        resp = post(server, path, {**body, "stream": False})
        assert resp.status_code == 500, resp.text
        text = resp.text
        assert "unable to load model" in text and "data is not within the file bounds" in text, text
        assert "Traceback" not in text


def test_concurrent_cold_requests_load_the_vocabulary_once(models_dir: Path, model_path: Path) -> None:
    env = {"PYLLAMA_MODELS": str(models_dir), "PYLLAMA_NUM_THREADS": "1"}
    with start_server(env) as base:
        client = ollama.Client(host=base)
        client.create(MODEL, files={"model.gguf": client.create_blob(model_path)})
        rss_before = _rss(_server_pid(_port(base)))
        results: list[int] = []

        def render() -> None:
            resp = post(base, "/api/generate", {"model": MODEL, "prompt": "hi", "_debug_render_only": True})
            results.append(resp.status_code)

        threads = [threading.Thread(target=render) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [200] * 24
        grown = _rss(_server_pid(_port(base))) - rss_before
        # One vocabulary of SmolLM2 (49k tokens + merges) is tens of MB; 24 copies were hundreds.
        assert grown < 120 * 2**20, grown


def _server_pid(port: int) -> int:
    [pid] = [pid for pid, cmd in _processes() if "pyllama.server.app:create_app" in cmd
             and f"--port\0{port}\0" in cmd + "\0"]
    return pid


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")
