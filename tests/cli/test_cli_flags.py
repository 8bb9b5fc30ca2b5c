"""Each flag in every position relative to the command, the model and the
prompt, as people paste `ollama` lines: before the model, between model and
prompt, between prompt words, after the prompt, before the command."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from cliutil import CLI

PROMPT = ("Say", "hi")


def placements(model: str, *flag: str) -> Iterator[tuple[str, ...]]:
    """`run` with ``flag`` at every place a user might type it."""
    yield ("run", *flag, model, *PROMPT)
    yield ("run", model, *flag, *PROMPT)
    yield ("run", model, PROMPT[0], *flag, PROMPT[1])
    yield ("run", model, *PROMPT, *flag)
    yield (*flag, "run", model, *PROMPT)


@pytest.fixture(scope="module")
def plain(served: CLI, smol: str) -> str:
    """The answer to PROMPT without flags (temperature 0: the same every time)."""
    out = served("run", smol, *PROMPT)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("flag", [("--verbose",), ("--verbose=true",)])
def test_verbose_anywhere(served: CLI, smol: str, plain: str, flag: tuple[str, ...]) -> None:
    for args in placements(smol, *flag):
        out = served(*args)
        assert out.returncode == 0, (args, out.stderr)
        assert out.stdout == plain, args  # the flag did not become part of the prompt
        assert "eval count:" in out.stderr and "eval rate:" in out.stderr, args


def test_false_boolean_is_off(served: CLI, smol: str, plain: str) -> None:
    out = served("run", smol, *PROMPT, "--verbose=false", "--hidethinking=0")
    assert out.returncode == 0 and out.stdout == plain and "eval count" not in out.stderr


@pytest.mark.parametrize("flag", [("--hidethinking",), ("--nowordwrap",), ("--think=false",), ("--insecure",)])
def test_flags_without_visible_effect_on_a_pipe_stay_out_of_the_prompt(
        served: CLI, smol: str, plain: str, flag: tuple[str, ...]) -> None:
    for args in placements(smol, *flag):
        out = served(*args)
        assert out.returncode == 0, (args, out.stderr)
        assert out.stdout == plain, args


@pytest.mark.parametrize("flag", [("--think",), ("--think=high",), ("--think=true",)])
def test_think_anywhere(served: CLI, smol: str, flag: tuple[str, ...]) -> None:
    # SmolLM2 cannot think: the server's refusal proves the flag arrived, and a bare
    # `--think` before "Say" did not swallow it as its value.
    for args in placements(smol, *flag):
        out = served(*args)
        assert out.returncode == 1, args
        assert out.stderr.strip() == f'Error: "{smol}" does not support thinking', (args, out.stderr)


@pytest.mark.parametrize("flag", [("--format", "json"), ("--format=json",)])
def test_format_anywhere(served: CLI, smol: str, flag: tuple[str, ...]) -> None:
    for args in placements(smol, *flag):
        out = served(*args)
        assert out.returncode == 0, (args, out.stderr)
        assert out.stdout.lstrip().startswith("{"), (args, out.stdout)


def test_format_json_schema(served: CLI, smol: str) -> None:
    schema = '{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}'
    out = served("run", smol, "Pick a number", "--format", schema)
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r'\s*\{\s*"n"\s*:\s*-?\d+\s*\}\s*', out.stdout), out.stdout


@pytest.mark.parametrize("flag", [("--keepalive", "10m"), ("--keepalive=10m",)])
def test_keepalive_anywhere(served: CLI, smol: str, flag: tuple[str, ...]) -> None:
    for args in placements(smol, *flag):
        assert served("stop", smol).returncode == 0
        out = served(*args)
        assert out.returncode == 0, (args, out.stderr)
        row = next(r for r in served("ps").stdout.splitlines() if r.startswith(smol))
        # 10m, not the default 5m: "9 minutes from now" or "10 minutes from now".
        assert re.search(r"\b(9|10) minutes from now$", row), (args, row)
    served("stop", smol)


@pytest.mark.parametrize("flag", [("--dimensions", "8"), ("--dimensions=8",), ("--truncate=false",), ("--truncate",)])
def test_embedding_flags_refused_for_a_chat_model(served: CLI, smol: str, flag: tuple[str, ...]) -> None:
    for args in placements(smol, *flag):
        out = served(*args)
        assert out.returncode == 1, args
        assert "are for embedding models" in out.stderr, (args, out.stderr)


def test_double_dash_ends_flags(served: CLI, smol: str) -> None:
    out = served("run", smol, "--", "-5 degrees: is that cold?")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    # After `--` a flag is prompt text: same answer as the prompt typed plainly.
    quoted = served("run", smol, "--verbose", "--", "--verbose", "hi")
    plain = served("run", smol, input="--verbose hi")  # the same text, piped
    assert quoted.returncode == 0 and quoted.stdout == plain.stdout
    assert "eval count:" in quoted.stderr  # the flag before `--` still counts
    out = served("run", smol, "-5 degrees")
    assert out.returncode == 1 and out.stderr.startswith("Error: unknown shorthand flag: '5' in -5")


def test_show_flags_anywhere(served: CLI, smol: str) -> None:
    for args in (("show", "--modelfile", smol), ("show", smol, "--modelfile"), ("--modelfile", "show", smol)):
        out = served(*args)
        assert out.returncode == 0 and "FROM " in out.stdout, args
    for args in (("show", "-v", smol), ("show", smol, "--verbose"), ("show", smol, "-v=true")):
        out = served(*args)
        assert out.returncode == 0, args
        assert "  Metadata" in out.stdout and "general.architecture" in out.stdout, args
    out = served("show", smol, "--system", "--license")
    assert out.returncode == 1 and "only one of" in out.stderr


def test_create_flags_anywhere(served: CLI, model_path: Path, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text(f"FROM {model_path}\nPARAMETER num_ctx 512\n")
    modelfile = str(tmp_path / "Modelfile")
    for i, args in enumerate((("-f", modelfile, "flags-a"), ("flags-b", "--file", modelfile),
                              (f"--file={modelfile}", "flags-c"), ("flags-d", f"-f{modelfile}"))):
        out = served("create", *args)
        assert out.returncode == 0, (args, out.stderr)
        name = "flags-" + "abcd"[i]
        assert re.search(r"num_ctx\s+512", served("show", name, "--parameters").stdout), args
        assert served("rm", name).returncode == 0


def test_list_prefix_and_rm_many(served: CLI, smol: str) -> None:
    for name in ("prefix-one", "prefix-two"):
        assert served("cp", smol, name).returncode == 0
    rows = served("ls", "PREFIX").stdout.strip().splitlines()[1:]
    assert sorted(r.split()[0] for r in rows) == ["prefix-one:latest", "prefix-two:latest"]
    out = served("rm", "prefix-one", "prefix-two")
    assert out.stdout.splitlines() == ["deleted 'prefix-one'", "deleted 'prefix-two'"]
    assert served("list", "prefix").stdout.split() == ["NAME", "ID", "SIZE", "MODIFIED"]


def _screen(text: str) -> str:
    """What the terminal shows: ``ESC[nD`` moves back over n characters that ``ESC[K`` erases."""
    out = ""
    for part in re.split(r"(\x1b\[\d*[A-Za-z])", text.replace("\r", "")):
        back = re.fullmatch(r"\x1b\[(\d*)D", part)
        if back:
            out = out[: len(out) - int(back.group(1) or 1)]
        elif not part.startswith("\x1b"):
            out += part
    return out


def test_nowordwrap_on_a_terminal(served: CLI, smol: str) -> None:
    """On a 40-column terminal answers wrap before the edge unless --nowordwrap."""
    prompt = "Explain in detail why the sky is blue."

    def answer(*args: str) -> list[str]:
        term = served.terminal(*args, columns=40)
        text = term.read_all()
        assert term.close() == 0, text
        return [line for line in _screen(text).split("\n") if line]

    wrapped = answer("run", smol, prompt)
    assert max(len(line) for line in wrapped) <= 35, wrapped
    for args in (("run", "--nowordwrap", smol, prompt), ("run", smol, prompt, "--nowordwrap"),
                 ("run", smol, "--nowordwrap", prompt)):
        lines = answer(*args)
        assert max(len(line) for line in lines) > 40, (args, lines)
        assert " ".join(lines).split() == " ".join(wrapped).split(), args  # same words, other line breaks
