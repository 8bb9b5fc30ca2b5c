"""Stopping `pyllama serve` while the CLI streams an answer: the CLI says the
server shut down (not that a model runner crashed), one-shot and in the REPL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cliutil import CLI, clean_env
from serverutil import free_port, wait_http

COUNT = "Count from 1 to 1000, separated by commas."


@pytest.fixture
def own_server(tmp_path: Path, model_path: Path) -> Iterator[tuple[CLI, subprocess.Popen[bytes]]]:
    """`pyllama serve` in its own process group (as under a terminal or a service
    manager), with a model that answers at length."""
    host = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "pyllama", "serve", "--models", str(tmp_path / "models")],
                            env=clean_env(PYLLAMA_HOST=host, PYLLAMA_NUM_THREADS="1", HOME=str(tmp_path)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://{host}/", proc)
        cli = CLI(host, tmp_path)
        (tmp_path / "Modelfile").write_text(f"FROM {model_path}\nPARAMETER temperature 0\nPARAMETER num_predict 4096\n")
        assert cli("create", "counter", "-f", str(tmp_path / "Modelfile")).returncode == 0
        yield cli, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _server_output(proc: subprocess.Popen[bytes]) -> str:
    proc.wait(timeout=60)
    return proc.stdout.read().decode(errors="replace") if proc.stdout else ""


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm-group", "sigterm"])
def test_one_shot_hears_the_server_shut_down(own_server: tuple[CLI, subprocess.Popen[bytes]], how: str) -> None:
    cli, server = own_server
    run = subprocess.Popen([sys.executable, "-m", "pyllama", "run", "counter", COUNT], env=cli.env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdout is not None
    assert run.stdout.read(8), "no answer started"
    if how == "ctrl-c":  # the terminal signals the whole foreground group, runners included
        os.killpg(server.pid, signal.SIGINT)
    elif how == "sigterm-group":
        os.killpg(server.pid, signal.SIGTERM)
    else:
        server.terminate()
    _, err = run.communicate(timeout=120)
    log = _server_output(server)
    assert run.returncode == 1, err
    assert err.decode().strip() == "Error: the server shut down", (err, log)
    assert "unexpectedly" not in log and "Traceback" not in log, log


def test_repl_hears_the_server_shut_down(own_server: tuple[CLI, subprocess.Popen[bytes]]) -> None:
    cli, server = own_server
    term = cli.terminal("run", "counter")
    term.read_until(">>> ")
    term.send(COUNT + "\r")
    term.read_until("commas.")  # the echo of the line
    term.read_until("1")  # the answer has started
    os.killpg(server.pid, signal.SIGTERM)
    text = term.read_all()
    assert term.close() == 1, text
    assert "Error: the server shut down" in text, text
    assert "unexpectedly" not in _server_output(server)


def test_dropped_connection_is_reported(own_server: tuple[CLI, subprocess.Popen[bytes]]) -> None:
    """A server killed outright sends no error line: the CLI still says what happened."""
    cli, server = own_server
    run = subprocess.Popen([sys.executable, "-m", "pyllama", "run", "counter", COUNT], env=cli.env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdout is not None and run.stdout.read(8)
    os.killpg(server.pid, signal.SIGKILL)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 1
    assert err.decode().strip() == "Error: the server shut down", err
