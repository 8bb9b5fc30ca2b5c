"""Through the Ollama API, with PYLLAMA_NUM_PARALLEL unset: four slots by
default (shown by /api/ps), a system prompt another slot holds is not
evaluated again, and a conversation whose slot was taken by others comes
back from the host prompt cache."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from inferenceutil import MODEL, inference_server

OPTIONS: dict[str, Any] = {"num_ctx": 512, "temperature": 0}
SYSTEM = ("You are a careful assistant for a small bakery. You answer questions about bread, cakes, "
          "opening hours and prices. Keep answers short, friendly and factual. ") * 3


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[str]:
    with inference_server(tmp_path_factory.mktemp("models"), model_path, parallel=None,
                          PYLLAMA_PROMPT_CACHE_MIB="64") as base:
        yield base


@pytest.fixture(scope="module")
def client(base: str) -> ollama.Client:
    return ollama.Client(host=base, timeout=300)


def _generate(client: ollama.Client, prompt: str, n: int = 4) -> Any:
    return client.generate(MODEL, prompt, raw=True, options={**OPTIONS, "num_predict": n})


def test_four_slots_by_default(base: str, client: ollama.Client) -> None:
    _generate(client, "Hello", 1)
    [entry] = httpx.get(base + "/api/ps").json()["models"]
    assert entry["num_parallel"] == 4 and entry["context_length"] == 4 * 512
    assert client.ps().models[0].context_length == 4 * 512  # the official client still reads it


def test_a_busy_slots_system_prompt_is_not_evaluated_again(client: ollama.Client) -> None:
    first = client.generate(MODEL, SYSTEM + "\nUser: When do you open?\nAssistant:", raw=True, stream=True,
                            options={**OPTIONS, "num_predict": 48})
    stream = iter(first)
    next(stream)  # the first request is generating on its slot now
    rest: list[Any] = []
    reader = threading.Thread(target=lambda: rest.extend(stream))
    reader.start()
    second = _generate(client, SYSTEM + "\nUser: Do you sell rye bread?\nAssistant:")
    reader.join()
    n_system = len(SYSTEM.split())  # words: fewer than its tokens
    full = _generate(client, "Unrelated: " + SYSTEM + "\nUser: Do you sell rye bread?\nAssistant:")
    assert full.prompt_eval_count > n_system
    assert second.prompt_eval_count < full.prompt_eval_count - n_system


def test_a_returning_conversation_comes_back_from_host_memory(client: ollama.Client) -> None:
    """Every conversation starts alike, so each new one takes the previous one's slot (its
    longest cached prefix): the first one's KV survives only in the prompt cache."""
    def opening(topic: str) -> str:
        return f"Tell me everything about {topic}. " + " ".join(f"{topic} fact {i}." for i in range(20))

    first = _generate(client, opening("bread"))
    for topic in ("rivers", "chess", "volcanoes", "violins", "comets"):
        _generate(client, opening(topic))
    follow_up = opening("bread") + first.response + " And rye?"
    again = _generate(client, follow_up)
    fresh = _generate(client, "Fresh. " + follow_up)
    assert fresh.prompt_eval_count > 100
    assert again.prompt_eval_count < 20 < fresh.prompt_eval_count - again.prompt_eval_count
