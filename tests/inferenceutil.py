"""Shared setup for the inference API tests: a server with SmolLM2 stored as ``smol``.

Runners use one thread (ggml's workers spin on a shared machine) and every
request keeps its context small (``num_ctx`` 512) so one runner serves them all.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from serverutil import start_server

MODEL = "smol"
OPTIONS: dict[str, Any] = {"num_ctx": 512, "temperature": 0, "seed": 42}
CREATED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
METRICS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
           "eval_duration")


@contextmanager
def inference_server(models_dir: Path, model_path: Path, parallel: int | None = 4, **extra: str) -> Iterator[str]:
    """Start a server on ``models_dir`` and store SmolLM2 there as ``smol``; yields the base URL.
    ``parallel`` None leaves PYLLAMA_NUM_PARALLEL unset; ``extra``: more environment."""
    env = {"PYLLAMA_MODELS": str(models_dir), "PYLLAMA_NUM_THREADS": "1", **extra}
    if parallel is not None:
        env["PYLLAMA_NUM_PARALLEL"] = str(parallel)
    with start_server(env) as base:
        client = ollama.Client(host=base)
        client.create(MODEL, files={"model.gguf": client.create_blob(model_path)})
        yield base


@pytest.fixture(scope="module")
def client(base: str) -> ollama.Client:
    """The official client on the module's server (each test module defines ``base``)."""
    return ollama.Client(host=base, timeout=120)


def options(**extra: Any) -> dict[str, Any]:
    return {**OPTIONS, **extra}


def ndjson(base: str, path: str, body: dict[str, Any]) -> tuple[httpx.Response, list[dict[str, Any]]]:
    """POST and read an NDJSON stream; every line must be one compact JSON object."""
    with httpx.stream("POST", base + path, json=body, timeout=120) as resp:
        lines = [line for line in resp.iter_lines() if line]
    objects = []
    for line in lines:
        obj = json.loads(line)
        assert json.dumps(obj, separators=(",", ":"), ensure_ascii=False) == line
        objects.append(obj)
    return resp, objects


def post(base: str, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    if isinstance(body, (bytes, str)):
        return httpx.post(base + path, content=body, timeout=120, **kwargs)
    return httpx.post(base + path, json=body, timeout=120, **kwargs)


def generate_bare(base: str, model: str, prompt: str, **options: Any) -> dict[str, Any]:
    """A greedy, unstreamed /api/generate of ``prompt`` as it is (a bare template,
    not raw: raw answers carry no ``context``); ``options`` over temperature 0."""
    body = {"model": model, "prompt": prompt, "template": "{{ .Prompt }}", "stream": False,
            "options": {"temperature": 0, **options}}
    resp = post(base, "/api/generate", body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def create_with_cli(base: str, name: str, folder: Path) -> None:
    """``pyllama create NAME -f Modelfile`` in ``folder`` (relative paths resolve there), against ``base``."""
    done = subprocess.run([sys.executable, "-m", "pyllama", "create", name, "-f", "Modelfile"], cwd=folder,
                          env={**os.environ, "PYLLAMA_HOST": base}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


# Model variants the chat-shaped routes share: a template that renders tools and tool calls (with a
# format that forces one call, so the tool-call parser has something to find), and one that thinks.
TOOLS_TEMPLATE = """{{- if .Tools }}<|im_start|>system
Call a tool by answering with JSON. Tools: {{ json .Tools }}<|im_end|>
{{ end }}
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .ToolCalls }}{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}{{ end }}
{{- else }}{{ .Content }}{{ end }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}}
CALL = {"type": "object", "additionalProperties": False, "required": ["name", "arguments"], "properties": {
    "name": {"type": "string", "enum": ["get_weather"]},
    "arguments": {"type": "object", "additionalProperties": False, "required": ["city"],
                  "properties": {"city": {"type": "string", "enum": ["Paris"]}}}}}


THINKING_TEMPLATE = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .Thinking }}<think>{{ .Thinking }}</think>
{{ end }}{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ if .Think }}<think>{{ end }}"""


# Thinking opens after "Plan:" and closes at the first "." (tags inferred around .Thinking), so
# SmolLM2 thinks for a sentence and then answers; a final assistant turn is a prefill.
PLAN_TEMPLATE = """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}<|im_start|>{{ .Role }}
{{ if .Thinking }}Plan:{{ .Thinking }}.{{ end }}{{ .Content }}
{{- if not (and $last (eq .Role "assistant")) }}<|im_end|>
{{ end }}
{{- if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ if $.Think }}Plan:{{ end }}
{{- end }}
{{- end }}"""


# A small structured-output schema the compat layers share.
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0,
                                                                        "maximum": 120}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
