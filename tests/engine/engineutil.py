"""Helpers shared by the engine tests."""

from __future__ import annotations

from pyllama import _native
from pyllama.engine import Chunk, Done, Engine, RequestHandle


def greedy(**extra: object) -> dict[str, object]:
    """Options for deterministic runs."""
    return {"temperature": 0, **extra}


def chat(model: _native.Model, text: str) -> str:
    """A user turn rendered with the model's chat template."""
    return _native.ChatTemplates(model).apply([{"role": "user", "content": text}])["prompt"]


def collect(handle: RequestHandle) -> tuple[list[Chunk], Done]:
    """All chunks of a completion and its Done record."""
    chunks: list[Chunk] = []
    final = None
    for event in handle:
        if isinstance(event, Chunk):
            chunks.append(event)
        else:
            final = event
    assert isinstance(final, Done), final
    return chunks, final


def run(engine: Engine, prompt: str, **options: object) -> tuple[list[Chunk], Done]:
    return collect(engine.submit(prompt, greedy(**options)))
