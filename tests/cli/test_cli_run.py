"""`pyllama run` (one-shot, piped, --verbose, --format json), `ps`, `stop`,
and the interactive REPL driven through a pseudo-terminal."""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from pathlib import Path

from cliutil import CLI, Terminal, clean_env


def test_one_shot_and_piped(served: CLI, smol: str) -> None:
    out = served("run", smol, "What is the capital of France? Answer in one word.")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip(), "no answer"
    again = served("run", smol, "What is the capital of France? Answer in one word.")
    assert again.stdout == out.stdout  # temperature 0 from the Modelfile
    piped = served("run", smol, input="What is the capital of France? Answer in one word.")
    assert piped.returncode == 0
    assert piped.stdout == out.stdout


def test_verbose_stats_and_json_format(served: CLI, smol: str) -> None:
    out = served("run", smol, "Say hi", "--verbose")
    assert out.returncode == 0, out.stderr
    for label in ("total duration:", "prompt eval count:", "eval count:", "eval duration:", "eval rate:"):
        assert label in out.stderr, label
    # A question answered with a short object, well within num_predict 48 (Modelfile).
    out = served("run", smol, 'Give a JSON object with one key "fruit" and a fruit name as its value.',
                 "--format", "json")
    assert out.returncode == 0, out.stderr
    value = json.loads(out.stdout)
    assert isinstance(value, dict) and list(value) == ["fruit"], out.stdout


def test_ps_and_stop(served: CLI, smol: str) -> None:
    assert served("run", smol, "", "--keepalive", "10m").returncode == 0  # loads only
    out = served("ps")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.strip().splitlines()
    assert header.split() == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    row = next(r for r in rows if r.startswith(smol))
    assert "100% CPU" in row and "from now" in row
    assert served("ps", "zzz").stdout.split() == header.split()  # a prefix keeps only matching names
    assert served("stop", smol).returncode == 0
    deadline = time.monotonic() + 60
    while smol in served("ps").stdout and time.monotonic() < deadline:
        time.sleep(0.5)
    assert smol not in served("ps").stdout


def test_run_unknown_model_fails_cleanly(served: CLI) -> None:
    out = served("run", "does-not-exist", "hi")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("Error:")


def test_repl_session(served: CLI, smol: str) -> None:
    term = served.terminal("run", smol)
    term.read_until(">>> ")
    term.send("/set parameter num_predict 8\r")
    assert "Set parameter 'num_predict' to '8'" in term.read_until(">>> ")
    term.send("/set parameter temperature hot\r")
    assert "Couldn't set parameter" in term.read_until(">>> ")
    term.send("/set system Answer in French.\r")
    assert "Set system message." in term.read_until(">>> ")
    term.send("/show parameters\r")
    assert "num_predict" in term.read_until(">>> ")
    term.send("/show modelfile\r")
    assert "FROM " in term.read_until(">>> ")
    term.send('"""Hello\rthere"""\r')
    answer = term.read_until(">>> ")
    assert "... " in answer  # continuation prompt
    assert len(answer.strip()) > 0
    term.send("/clear\r")
    assert "Cleared session context" in term.read_until(">>> ")
    term.send("/nonsense\r")
    assert "Unknown command" in term.read_until(">>> ")
    term.send("/save my-session\r")
    assert "Created new model 'my-session'" in term.read_until(">>> ")
    term.send("/bye\r")
    assert term.close() == 0
    assert "my-session:latest" in served("list").stdout
    modelfile = served("show", "my-session", "--modelfile").stdout
    assert re.search(r"SYSTEM\s+\"?Answer in French", modelfile), modelfile


def test_repl_ctrl_d_exits(served: CLI, smol: str) -> None:
    term = served.terminal("run", smol)
    term.read_until(">>> ")
    term.send("\x04")
    assert term.close() == 0


def test_repl_other_commands(served: CLI, smol: str) -> None:
    term = served.terminal("run", smol)
    term.read_until(">>> ")
    term.send("/?\r")
    assert "/? shortcuts    Help for keyboard shortcuts" in term.read_until(">>> ")
    term.send("/? shortcuts\r")
    assert "Ctrl + d            Exit pyllama (/bye)" in term.read_until(">>> ")
    term.send("/set\r")
    assert "/set nothink           Disable thinking" in term.read_until(">>> ")
    term.send("/set parameter\r")
    assert "Available Parameters:" in term.read_until(">>> ")
    term.send("/set parameter stop <|x|> <|y|>\r")
    assert "Set parameter 'stop' to '<|x|>, <|y|>'" in term.read_until(">>> ")
    term.send("/show parameters\r")
    shown = term.read_until(">>> ")
    assert "Model defined parameters:" in shown and "temperature" in shown
    assert "User defined parameters:" in shown and "[<|x|> <|y|>]" in shown
    term.send("/show info\r")
    info = term.read_until(">>> ")
    assert "  Model" in info and "architecture" in info and "  Capabilities" in info
    term.send("/set think\r")
    assert f'warning: model "{smol}" does not support thinking output' in term.read_until(">>> ")
    term.send("/set nothink\r")
    assert "Set 'nothink' mode." in term.read_until(">>> ")
    term.send("/set format yaml\r")
    assert "Invalid or missing format" in term.read_until(">>> ")
    term.send("/set verbose\r")
    assert "Set 'verbose' mode." in term.read_until(">>> ")
    term.send("Say hi\r")
    assert "eval rate:" in term.read_until(">>> ")
    term.send("/list\r")
    assert smol in term.read_until(">>> ")
    term.send("/load nope\r")
    assert "Couldn't find model 'nope'" in term.read_until(">>> ")
    term.send("/save bad name!\r")
    assert "Usage:" in term.read_until(">>> ")
    term.send("/save bad!name\r")
    assert "error: The model name 'bad!name' is invalid" in term.read_until(">>> ")
    term.send(f"/load {smol}\r")
    assert f"Loading model '{smol}'" in term.read_until(">>> ")
    term.send("/exit\r")
    assert term.close() == 0


def test_repl_flags_anywhere(served: CLI, smol: str) -> None:
    """Flags around the model name reach the session (--verbose prints timings)."""
    for args in (("run", "--verbose", smol), ("run", smol, "--verbose"), ("--verbose", "run", smol)):
        term = served.terminal(*args)
        term.read_until(">>> ")
        term.send("Say hi\r")
        assert "eval rate:" in term.read_until(">>> "), args
        term.send("/bye\r")
        assert term.close() == 0


def test_repl_ctrl_c(served: CLI, smol: str) -> None:
    """Ctrl+C stops an answer and the session goes on; at the prompt it says how to leave."""
    term = served.terminal("run", smol)
    term.read_until(">>> ")
    term.send("Explain in detail why the sky is blue.\r")
    term.read_until("blue.")  # the echo of the line
    term.read_until(" ")  # the answer has started
    term.proc.send_signal(signal.SIGINT)
    term.read_until(">>> ")
    term.proc.send_signal(signal.SIGINT)
    assert "Use Ctrl + d or /bye to exit." in term.read_until(">>> ")
    term.send("/bye\r")
    assert term.close() == 0


def test_repl_history(served: CLI, smol: str, tmp_path: Path) -> None:
    """Lines go to ~/.pyllama/history unless OLLAMA_NOHISTORY or /set nohistory says no."""
    for case, env, first in (("kept", {}, "/set verbose"), ("env", {"OLLAMA_NOHISTORY": "1"}, "/set verbose"),
                             ("command", {}, "/set nohistory")):
        home = tmp_path / case
        term = Terminal([sys.executable, "-m", "pyllama", "run", smol],
                        clean_env(PYLLAMA_HOST=served.host, HOME=str(home), TERM="dumb", **env))
        term.read_until(">>> ")
        term.send(first + "\r")
        term.read_until(">>> ")
        term.send("/bye\r")
        assert term.close() == 0
        assert (home / ".pyllama" / "history").exists() == (case == "kept"), case


def test_repl_shows_the_models_messages(served: CLI, model_path: Path, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text(f"FROM {model_path}\nPARAMETER num_predict 8\n"
                                        "MESSAGE user Remember the number 42.\nMESSAGE assistant I will remember 42.\n")
    assert served("create", "with-history", "-f", str(tmp_path / "Modelfile")).returncode == 0
    term = served.terminal("run", "with-history")
    shown = term.read_until("I will remember 42.")
    assert ">>> Remember the number 42." in shown
    term.read_until(">>> ")
    term.send("/bye\r")
    assert term.close() == 0
    served("rm", "with-history")
