"""Tokenizer against llama.cpp's own test vectors (models/ggml-vocab-*)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pyllama import _native

VOCAB_DIR = Path(__file__).resolve().parents[2] / "llama.cpp" / "models"
SEPARATOR = "\n__ggml_vocab_test__\n"


def vocab_cases() -> list[Path]:
    return sorted(p for p in VOCAB_DIR.glob("ggml-vocab-*.gguf")
                  if p.with_name(p.name + ".inp").is_file() and p.with_name(p.name + ".out").is_file())


def read_cases(vocab: Path) -> list[tuple[str, list[int]]]:
    raw = vocab.with_name(vocab.name + ".inp").read_text(encoding="utf-8")
    texts = raw.split(SEPARATOR)
    if texts and texts[-1] == "":
        texts.pop()
    lines = vocab.with_name(vocab.name + ".out").read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    assert len(texts) == len(lines), f"{vocab.name}: {len(texts)} inputs but {len(lines)} outputs"
    return [(text, [int(t) for t in line.split()]) for text, line in zip(texts, lines)]


def test_vocab_vectors_present():
    assert len(vocab_cases()) >= 10, f"expected llama.cpp's vocab test files in {VOCAB_DIR}"


@pytest.mark.parametrize("vocab", vocab_cases(), ids=lambda p: p.name)
def test_tokenizer_matches_llama_cpp_vectors(vocab: Path):
    model = _native.Model(vocab, vocab_only=True)
    cases = read_cases(vocab)
    assert cases
    failures = []
    for text, expected in cases:
        got = model.tokenize(text, add_special=False, parse_special=False).tolist()
        if got != expected:
            failures.append((text, expected, got))
    assert not failures, f"{len(failures)} of {len(cases)} differ, first: {failures[0]!r}"


def test_vocab_only_model_refuses_context():
    vocab = vocab_cases()[0]
    model = _native.Model(vocab, vocab_only=True)
    with pytest.raises(ValueError):
        _native.Context(model)
