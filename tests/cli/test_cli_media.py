"""Image/audio paths in a `pyllama run` prompt, found and attached as `ollama run` does."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

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
