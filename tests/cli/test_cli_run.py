"""`pyllama run` (one-shot, piped, --verbose, --format json), `ps`, `stop`,
and the interactive REPL driven through a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time

from cliutil import CLI, clean_env


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
    for label in ("total duration:", "load duration:", "prompt eval count:", "eval count:", "eval rate:"):
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
    assert served("stop", smol).returncode == 0
    deadline = time.monotonic() + 60
    while smol in served("ps").stdout and time.monotonic() < deadline:
        time.sleep(0.5)
    assert smol not in served("ps").stdout


def test_run_unknown_model_fails_cleanly(served: CLI) -> None:
    out = served("run", "does-not-exist", "hi")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("Error:")


class Terminal:
    """A process on a pseudo-terminal, read until a marker appears."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.buffer = ""

    def read_until(self, marker: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {marker!r}; got {self.buffer[-2000:]!r}"
            ready, _, _ = select.select([self.master], [], [], min(left, 1.0))
            if ready:
                try:
                    self.buffer += os.read(self.master, 4096).decode(errors="replace")
                except OSError:
                    break
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            os.close(self.master)


def test_repl_session(served: CLI, smol: str) -> None:
    term = Terminal([sys.executable, "-m", "pyllama", "run", smol],
                    clean_env(PYLLAMA_HOST=served.host, HOME=str(served.home), TERM="dumb"))
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
    term = Terminal([sys.executable, "-m", "pyllama", "run", smol],
                    clean_env(PYLLAMA_HOST=served.host, HOME=str(served.home), TERM="dumb"))
    term.read_until(">>> ")
    term.send("\x04")
    assert term.close() == 0
