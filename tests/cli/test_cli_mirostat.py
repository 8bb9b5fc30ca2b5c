"""mirostat is honoured (a deliberate difference from current Ollama, which drops it):
set by ``PARAMETER`` it round-trips through ``show --modelfile``, and over HTTP it changes
what a seeded request generates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from cliutil import CLI

PROMPT = "Write one sentence about the sea."
SEEDED = {"temperature": 1.0, "seed": 7, "num_predict": 24, "num_ctx": 512}


@pytest.fixture(scope="module")
def models(served: CLI, model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> CLI:
    work = tmp_path_factory.mktemp("mirostat")
    for name, extra in (("plain", ""), ("miro", "PARAMETER mirostat 2\nPARAMETER mirostat_tau 3.5\n")):
        (work / name).write_text(f"FROM {model_path}\n{extra}")
        result = served("create", name, "-f", str(work / name))
        assert result.returncode == 0, result.stderr
    return served


def _generate(cli: CLI, model: str, **options: Any) -> str:
    resp = httpx.post(f"http://{cli.host}/api/generate", timeout=180,
                      json={"model": model, "prompt": PROMPT, "stream": False, "options": {**SEEDED, **options}})
    assert resp.status_code == 200, resp.text
    text = resp.json()["response"]
    assert text
    return str(text)


def test_parameter_round_trips_through_show(models: CLI) -> None:
    modelfile = models("show", "miro", "--modelfile").stdout
    assert "PARAMETER mirostat 2\n" in modelfile and "PARAMETER mirostat_tau 3.5\n" in modelfile


def test_mirostat_changes_seeded_output(models: CLI) -> None:
    plain = _generate(models, "plain")
    assert _generate(models, "plain") == plain  # the seed makes a run repeatable
    mirostat = _generate(models, "plain", mirostat=2)
    assert mirostat == _generate(models, "plain", mirostat=2)
    assert mirostat != plain
    # The Modelfile's PARAMETERs apply as request options would.
    assert _generate(models, "miro") == _generate(models, "plain", mirostat=2, mirostat_tau=3.5)
    assert _generate(models, "miro", mirostat=0) == plain


@pytest.mark.parametrize(("options", "message"), [
    ({"mirostat": 3}, "mirostat must be 0 (off), 1 or 2, got 3"),
    ({"mirostat": 2, "mirostat_eta": 0}, "mirostat_tau and mirostat_eta must be > 0"),
    ({"mirostat": "two"}, 'option "mirostat" must be of type integer'),
])
def test_bad_mirostat_values_are_400(models: CLI, options: dict[str, Any], message: str) -> None:
    resp = httpx.post(f"http://{models.host}/api/generate", timeout=180,
                      json={"model": "plain", "prompt": PROMPT, "stream": False, "options": {**SEEDED, **options}})
    assert resp.status_code == 400 and resp.json() == {"error": message}
