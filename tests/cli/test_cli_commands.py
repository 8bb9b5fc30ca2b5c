"""Each `pyllama` command as a user types it, against `pyllama serve`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from cliutil import CLI, clean_env
from serverutil import free_port


def test_version() -> None:
    out = subprocess.run([sys.executable, "-m", "pyllama", "--version"], capture_output=True, text=True,
                         env=clean_env())
    assert out.returncode == 0
    assert re.fullmatch(r"pyllama version is \d+\.\d+\.\d+\n", out.stdout)


def test_server_unreachable_says_how_to_start_it(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "pyllama", "list"], capture_output=True, text=True,
                         env=clean_env(PYLLAMA_HOST=f"127.0.0.1:{free_port()}", HOME=str(tmp_path)))
    assert out.returncode == 1
    assert out.stderr.startswith("Error: could not connect")
    assert "pyllama serve" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_create_prints_progress(served: CLI, model_path: Path, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text(f"FROM {model_path.name}\nPARAMETER num_ctx 1024\n")
    (tmp_path / model_path.name).symlink_to(model_path)
    out = served("create", "progress-test", "-f", str(tmp_path / "Modelfile"))
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert "gathering model components" in text
    assert "success" in text
    served("rm", "progress-test")


def test_create_errors(served: CLI, tmp_path: Path) -> None:
    out = served("create", "x", "-f", str(tmp_path / "missing"))
    assert out.returncode == 1 and out.stderr.startswith("Error: open ")
    (tmp_path / "Modelfile").write_text("FROM ./nope.gguf\nPARAMETER temperature hot\n")
    out = served("create", "x", "-f", str(tmp_path / "Modelfile"))
    assert out.returncode == 1
    assert out.stderr.startswith("Error:") and "hot" in out.stderr


def test_list_show_cp_rm(served: CLI, smol: str) -> None:
    out = served("list")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.strip().splitlines()
    assert header.split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    row = next(r for r in rows if r.startswith(smol))
    assert re.search(r"\s[0-9a-f]{12}\s+\d+ MB\s+.* ago$", row), row
    assert served("ls").stdout.splitlines()[0] == header  # `ls` is `list`

    show = served("show", smol)
    assert show.returncode == 0
    assert "architecture" in show.stdout and "llama" in show.stdout
    assert "completion" in show.stdout
    assert "temperature" in show.stdout
    modelfile = served("show", smol, "--modelfile").stdout
    assert "FROM " in modelfile and "PARAMETER temperature 0" in modelfile
    assert served("show", smol, "--system").stdout.strip() == "You are terse."
    assert "temperature" in served("show", smol, "--parameters").stdout
    assert "<|im_start|>" in served("show", smol, "--template").stdout

    assert served("cp", smol, "copy-of-smol").stdout.strip() == f"copied '{smol}' to 'copy-of-smol'"
    assert "copy-of-smol:latest" in served("list").stdout
    out = served("rm", "copy-of-smol")
    assert out.returncode == 0 and out.stdout.strip() == "deleted 'copy-of-smol'"
    assert "copy-of-smol" not in served("list").stdout


def test_unknown_model_errors(served: CLI) -> None:
    for args in (("show", "nope"), ("rm", "nope"), ("cp", "nope", "other")):
        out = served(*args)
        assert out.returncode == 1, args
        # Ollama words copy's miss with double quotes, the others with single ones.
        assert re.fullmatch(r"Error: model ['\"]nope['\"] not found", out.stderr.strip()), (args, out.stderr)
    out = served("stop", "nope")
    assert out.returncode == 1 and out.stderr.startswith("Error: couldn't find model")
    out = served("show", "bad name!")
    assert out.returncode == 1 and out.stderr.startswith("Error:")


def test_pull_and_push_through_a_registry(served: CLI, smol: str, registry: str) -> None:
    target = f"{registry}/cli/smol:v1"
    assert served("cp", smol, target).returncode == 0
    out = served("push", target, "--insecure")
    assert out.returncode == 0, out.stderr
    assert "success" in out.stderr
    assert out.stdout == f"\nYou can find your model at:\n\n\t{target}\n"
    assert served("rm", target).returncode == 0
    out = served("pull", "--insecure", target)
    assert out.returncode == 0, out.stderr
    assert "pulling manifest" in out.stderr and "success" in out.stderr
    assert target in served("list").stdout
    assert served("rm", target).returncode == 0
    out = served("run", target, "", "--insecure")  # run pulls a missing model first
    assert out.returncode == 0, out.stderr
    assert "pulling manifest" in out.stderr and target in served("list").stdout
    out = served("pull", f"{registry}/cli/missing:v1", "--insecure")
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1].startswith("Error:")


def test_bundled_model_import_is_idempotent(served: CLI) -> None:
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pyllama.bundled"], capture_output=True, text=True,
                              env=clean_env(PYLLAMA_HOST=served.host, HOME=str(served.home)), timeout=180)

    first, second = run(), run()
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout.strip() in ("imported smollm2:135m", "already have smollm2:135m")
    assert second.stdout.strip() == "already have smollm2:135m"
    assert "smollm2:135m" in served("list").stdout
