"""The command line as `ollama` users type it: help screens and parse
errors (no server needed: these end before any request)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cliutil import clean_env
from serverutil import free_port


def pyllama(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = clean_env(PYLLAMA_HOST=f"127.0.0.1:{free_port()}", **({"HOME": str(home)} if home else {}))
    return subprocess.run([sys.executable, "-m", "pyllama", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_root_help_lists_commands_like_ollama() -> None:
    out = pyllama("--help")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("Large language model runner\n\nUsage:\n  pyllama [flags]\n  pyllama [command]\n")
    listed = re.findall(r"^  (\w+) +\S", text.split("Available Commands:")[1].split("Flags:")[0], re.M)
    assert listed == ["serve", "create", "show", "run", "stop", "pull", "push", "list", "ps", "cp", "rm", "help"]
    assert re.search(r"^  -h, --help +help for pyllama$", text, re.M)
    assert re.search(r"^  -v, --version +Show version information$", text, re.M)
    assert text.rstrip().endswith('Use "pyllama [command] --help" for more information about a command.')
    assert pyllama().stdout == text  # no command: the help (Ollama opens its launcher menu)
    assert pyllama("help").stdout == text


def test_run_help_has_every_flag() -> None:
    out = pyllama("run", "--help")
    assert out.returncode == 0
    text = out.stdout
    assert text.startswith("Run a model\n\nUsage:\n  pyllama run MODEL [PROMPT] [flags]\n\nFlags:\n")
    flags = re.findall(r"^\s+(?:-\w, )?--([a-z-]+)", text.split("Flags:")[1].split("Environment")[0], re.M)
    assert flags == ["dimensions", "format", "help", "hidethinking", "insecure", "keepalive", "nowordwrap",
                     "think", "truncate", "verbose"]  # sorted, as pflag prints them
    assert re.search(r'--think string\[="true"\] +Enable thinking mode', text)
    assert re.search(r"--dimensions int +Truncate output embeddings", text)
    assert re.search(r"--keepalive string +Duration to keep a model loaded \(e\.g\. 5m\)", text)
    assert "Environment Variables:" in text and "PYLLAMA_HOST" in text and "PYLLAMA_NOHISTORY" in text
    # Every way of asking prints the same screen, wherever the flag stands.
    for args in (("run", "-h"), ("help", "run"), ("run", "some-model", "--help"), ("run", "m", "hi", "-h")):
        assert pyllama(*args).stdout == text, args


@pytest.mark.parametrize("command,usage,aliases", [
    ("serve", "pyllama serve [flags]", "serve, start"),
    ("list", "pyllama list [flags]", "list, ls"),
    ("ls", "pyllama list [flags]", "list, ls"),
    ("create", "pyllama create MODEL [flags]", None),
    ("show", "pyllama show MODEL [flags]", None),
    ("cp", "pyllama cp SOURCE DESTINATION [flags]", None),
    ("rm", "pyllama rm MODEL [MODEL...] [flags]", None),
    ("pull", "pyllama pull MODEL [flags]", None),
])
def test_command_help(command: str, usage: str, aliases: str | None) -> None:
    out = pyllama(command, "--help")
    assert out.returncode == 0
    assert f"Usage:\n  {usage}\n" in out.stdout
    assert (f"Aliases:\n  {aliases}\n" in out.stdout) == (aliases is not None)
    assert re.search(rf"^  -h, --help +help for {command if command != 'ls' else 'list'}$", out.stdout, re.M)


def test_show_and_create_help_flags() -> None:
    show = pyllama("show", "-h").stdout
    for flag in ("--license", "--modelfile", "--parameters", "--system", "--template"):
        assert flag in show
    assert re.search(r"^  -v, --verbose +Show detailed model information$", show, re.M)
    create = pyllama("create", "-h").stdout
    assert re.search(r"^  -f, --file string +Name of the Modelfile", create, re.M)
    assert re.search(r"^  -q, --quantize string +Quantize model", create, re.M)


@pytest.mark.parametrize("args,message", [
    (("run",), "Error: requires at least 1 arg(s), only received 0"),
    (("cp", "a"), "Error: accepts 2 arg(s), received 1"),
    (("show", "a", "b"), "Error: accepts 1 arg(s), received 2"),
    (("serve", "now"), "Error: accepts 0 arg(s), received 1"),
    (("run", "m", "--bogus"), "Error: unknown flag: --bogus"),
    (("run", "--bogus", "m"), "Error: unknown flag: --bogus"),
    (("run", "m", "-x", "hi"), "Error: unknown shorthand flag: 'x' in -x"),
    (("run", "m", "-hello"), None),  # -h inside a dash-prompt asks for help, as pflag reads it
    (("run", "m", "-verbose"), "Error: unknown shorthand flag: 'v' in -verbose"),
    (("run", "m", "--keepalive"), "Error: flag needs an argument: --keepalive"),
    (("run", "m", "--verb", "hi"), "Error: unknown flag: --verb"),  # no abbreviations
    (("run", "m", "--verbose=maybe"), 'Error: invalid argument "maybe" for "--verbose" flag'),
    (("run", "m", "--dimensions=x"), 'Error: invalid argument "x" for "--dimensions" flag'),
    (("run", "m", "hi", "--think=loud"), 'Error: invalid value for --think: "loud"'),
    (("run", "m", "--keepalive", "5x", "hi"), 'Error: time: unknown unit "x" in duration "5x"'),
    (("run", "m", "hi", "--keepalive=10"), 'Error: time: missing unit in duration "10"'),
    (("run", "m", "--format", "yaml", "hi"), "Error: invalid --format 'yaml'"),
    (("create", "m", "-f"), "Error: flag needs an argument: 'f' in -f"),
    (("runn", "m"), 'Error: unknown command "runn" for "pyllama"\n\nDid you mean this?\n\trun'),
    (("--verbose",), "Error: unknown flag: --verbose"),
])
def test_parse_errors(args: tuple[str, ...], message: str | None) -> None:
    out = pyllama(*args)
    if message is None:
        assert out.returncode == 0 and out.stdout.startswith("Run a model")
        return
    assert out.returncode == 1, out
    assert out.stderr.startswith(message), out.stderr
    assert out.stdout == ""


def test_refused_flags_say_why(tmp_path: Path) -> None:
    out = pyllama("create", "m", "--experimental", home=tmp_path)
    assert out.returncode == 1 and "safetensors" in out.stderr and "not supported" in out.stderr
    (tmp_path / "Modelfile").write_text("FROM x.gguf\n")
    out = pyllama("create", "--draft-quantize=q4_0", "m", "-f", str(tmp_path / "Modelfile"), home=tmp_path)
    assert out.returncode == 1 and "--draft-quantize is not supported" in out.stderr
