"""Image/audio paths in a `pyllama run` prompt, found and attached as `ollama run` does."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from cliutil import CLI
from mediautil import IMAGE_TOKENS, picture
from pyllama.cli.media import extract_media, is_multimodal


def test_paths_are_attached_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.png").write_bytes(b"png-bytes")
    (tmp_path / "my photo.JPG").write_bytes(b"jpg-bytes")
    (tmp_path / "clip.wav").write_bytes(b"wav-bytes")
    prompt = f"compare ./a.png with '{tmp_path}/my photo.JPG' and ./my\\ photo.JPG, hear ./clip.wav"
    text, media = extract_media(prompt)
    assert [base64.b64decode(m) for m in media] == [b"png-bytes", b"jpg-bytes", b"jpg-bytes", b"wav-bytes"]
    assert "png" not in text and "JPG" not in text and "wav" not in text and text.startswith("compare")
    err = capsys.readouterr().err
    assert "Added image './a.png'" in err and "Added audio './clip.wav'" in err


def test_missing_files_and_other_words_stay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    prompt = "what about ./nothing.png and image.png or https://x.invalid/a.png?"
    assert extract_media(prompt) == (prompt, [])


def test_only_media_models_attach() -> None:
    assert is_multimodal(["completion", "vision"]) and is_multimodal(["completion", "audio"])
    assert not is_multimodal(["completion", "tools"])


def test_repl_attaches_image_paths(served: CLI, model_path: Path, mmproj_path: Path, tmp_path: Path) -> None:
    (tmp_path / "mmproj.gguf").write_bytes(mmproj_path.read_bytes())
    (tmp_path / "Modelfile").write_text(f"FROM {model_path}\nFROM ./mmproj.gguf\nPARAMETER temperature 0\n"
                                        "PARAMETER num_predict 8\n")
    created = served("create", "eyes", "-f", str(tmp_path / "Modelfile"))
    assert created.returncode == 0, created.stderr
    (tmp_path / "pic.png").write_bytes(picture(22))
    term = served.terminal("run", "eyes", columns=200)
    try:
        term.read_until(">>> ")
        term.send("/set verbose\r")
        term.read_until(">>> ")
        term.send(f"what is in {tmp_path}/pic.png\r")
        answer = term.read_until(">>> ")
        term.send("what is in this one?\r")  # no path: text only, the image stays in the history
        second = term.read_until(">>> ")
        term.send("/bye\r")
    finally:
        term.close()
    assert f"Added image '{tmp_path}/pic.png'" in answer
    first_count = int(answer.split("prompt eval count:")[1].split()[0])
    assert first_count > IMAGE_TOKENS  # the image was in the prompt
    assert "Added image" not in second
    # the follow-up reuses the cached turn, image included: its new tokens are fewer than the first
    # prompt's text alone
    assert int(second.split("prompt eval count:")[1].split()[0]) < first_count - IMAGE_TOKENS
