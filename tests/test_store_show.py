"""Formatting helpers behind /api/show, GGUF header reading, capabilities,
and the TEMPLATE syntax check."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggufutil import write_tiny_llama
from pyllama.templates.capabilities import model_capabilities
from pyllama.store.gguf_meta import ElidedArray, GGUFError, human_number, read_gguf
from pyllama.templates import check_template as check_go_template
from pyllama.store.show import format_time, go_float, go_quote, parameters_text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.6, "0.6"), (1.0, "1"), (4096, "4096"), (131072, "131072"), (1e6, "1e+06"), (1048576, "1.048576e+06"),
     (0.0001, "0.0001"), (0.00001, "1e-05"), (-2.5, "-2.5"), (0, "0"), (100000.0, "100000")],
)
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


def test_go_quote_and_parameters_text() -> None:
    assert go_quote('a"b\\c\nd\x01é') == '"a\\"b\\\\c\\nd\\x01é"'
    assert parameters_text({"stop": ["<|eot_id|>", "x"], "num_ctx": 4096, "use_mmap": False}) == (
        'stop                           "<|eot_id|>"\n'
        'stop                           "x"\n'
        "num_ctx                        4096\n"
        "use_mmap                       false"
    )


def test_format_time_is_rfc3339_with_offset() -> None:
    text = format_time(1_700_000_000.25)
    assert text[:4] == "2023" and ".25" in text
    assert text.endswith("Z") or text[-6] in "+-"


def test_human_number() -> None:
    assert [human_number(n) for n in (134_515_008, 135_000_000, 3_200_000_000, 7_000_000_000, 1500, 12)] == [
        "134.52M", "135M", "3.2B", "7B", "2K", "12"]


def test_read_gguf_header(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "t.gguf", n_vocab=64)
    info = read_gguf(path)
    assert info.architecture == "llama" and info.file_type == "F32"
    assert info.kv["tokenizer.ggml.tokens"] == ElidedArray(64)
    assert len(read_gguf(path, materialise_arrays=True).kv["tokenizer.ggml.tokens"]) == 64
    assert info.parameter_count == sum(int(__import__("math").prod(t.shape)) for t in info.tensors)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 8)
    with pytest.raises(GGUFError):
        read_gguf(bad)
    with pytest.raises(GGUFError, match="not a GGUF"):
        (tmp_path / "x").write_bytes(b"nope")
        read_gguf(tmp_path / "x")


def test_capabilities_rules(tmp_path: Path) -> None:
    plain = read_gguf(write_tiny_llama(tmp_path / "p.gguf"))
    fim = read_gguf(write_tiny_llama(tmp_path / "f.gguf", extra_kv={"tokenizer.ggml.fim_pre_token_id": 3}))
    bert = read_gguf(write_tiny_llama(tmp_path / "b.gguf", arch="bert"))
    assert model_capabilities(plain) == ["completion"]
    assert model_capabilities(fim) == ["completion", "insert"]
    assert model_capabilities(bert) == ["embedding"]
    mean = read_gguf(write_tiny_llama(tmp_path / "m.gguf", arch="bert", extra_kv={"bert.pooling_type": 1}))
    rank = read_gguf(write_tiny_llama(tmp_path / "r.gguf", arch="bert", extra_kv={"bert.pooling_type": 4}))
    assert model_capabilities(mean) == ["embedding"]
    assert model_capabilities(rank) == ["embedding", "rerank"]
    assert model_capabilities(plain, has_projector=True) == ["completion", "vision"]
    jinja = "{% if tools %}{{ tools | tojson }}{% endif %}{% if enable_thinking %}<think>{% endif %}"
    assert model_capabilities(plain, jinja_template=jinja) == ["completion", "tools", "thinking"]
    assert model_capabilities(plain, go_template="{{ .Prompt }}", extra=["audio"]) == ["completion", "audio"]
    # A TEMPLATE layer decides insert by .Suffix, not by the GGUF's FIM tokens (Ollama's rule).
    assert model_capabilities(fim, go_template="{{ .Prompt }}") == ["completion"]
    assert model_capabilities(fim, go_template="{{ .Prompt }}{{ .Suffix }}") == ["completion", "insert"]


@pytest.mark.parametrize(
    "template",
    ["{{ .Prompt }}", "{{- if .System }}x{{ else if .Tools }}y{{ else }}z{{ end -}}",
     '{{ range .Messages }}{{ if eq .Role "user" }}{{ "}}" }}{{ end }}{{ end }}', "{{/* comment */}}plain"],
)
def test_go_template_ok(template: str) -> None:
    check_go_template(template)


@pytest.mark.parametrize(
    ("template", "message"),
    [("{{ if .X }}", "unexpected EOF in if"), ("{{ .X", "unclosed action"), ("x{{ end }}", "unexpected {{end}}"),
     ("{{ else }}", "unexpected {{else}}")],
)
def test_go_template_errors(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        check_go_template(template)
