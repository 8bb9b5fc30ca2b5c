"""Modelfile parsing, rendering and round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyllama.store.modelfile import (
    INVALID_COMMAND,
    INVALID_ROLE,
    ModelfileError,
    parse_modelfile,
    quote,
    sha256_file,
    to_create_request,
)

FULL = '''\ufeff# A comment line
from llama3.2
# another comment
TEMPLATE """{{ if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>{{ end }}{{ .Prompt }}"""
System "You are a pirate.
Answer in one line."
parameter temperature 0.7
PARAMETER stop "<|eot_id|>"
PARAMETER stop <|end|>
PARAMETER num_ctx 4096
Adapter ./lora.gguf
LICENSE """MIT "quoted" license"""
LICENSE second license
MESSAGE user Hi there
MESSAGE assistant "Ahoy!"
DRAFT ./draft.gguf
REQUIRES v0.14.0
RENDERER qwen3
PARSER qwen3
'''


def test_parse_every_instruction() -> None:
    mf = parse_modelfile(FULL)
    kinds = [c.keyword for c in mf.commands]
    assert kinds == [
        "from", "template", "system", "parameter", "parameter", "parameter", "parameter",
        "adapter", "license", "license", "message", "message", "draft", "requires", "renderer", "parser",
    ]
    assert mf.commands[0].value == "llama3.2"
    assert mf.commands[1].value.startswith("{{ if .System }}") and "\n\n{{ .System }}" in mf.commands[1].value
    assert mf.commands[2].value == "You are a pirate.\nAnswer in one line."
    assert [(c.name, c.value) for c in mf.of("parameter")] == [
        ("temperature", "0.7"), ("stop", "<|eot_id|>"), ("stop", "<|end|>"), ("num_ctx", "4096"),
    ]
    assert mf.of("license")[0].value == 'MIT "quoted" license'
    assert [(c.name, c.value) for c in mf.of("message")] == [("user", "Hi there"), ("assistant", "Ahoy!")]
    assert mf.commands[2].line == 7


def test_round_trip_parse_render_parse() -> None:
    first = parse_modelfile(FULL)
    text = first.render()
    second = parse_modelfile(text)
    assert [(c.keyword, c.name, c.value) for c in first.commands] == [(c.keyword, c.name, c.value) for c in second.commands]
    assert second.render() == text


def test_render_quoting_like_ollama() -> None:
    assert quote("plain") == "plain"
    assert quote("two\nlines") == '"two\nlines"'
    assert quote(' lead') == '" lead"'
    assert quote('say "hi"\nthen') == '"""say "hi"\nthen"""'
    mf = parse_modelfile('FROM m\nSYSTEM """x\ny"""\nPARAMETER stop "a b "\n')
    assert mf.render() == 'FROM m\nSYSTEM "x\ny"\nPARAMETER stop "a b "\n'


def test_legacy_always_quoted_form() -> None:
    legacy = 'FROM /blobs/sha256-abc\nTEMPLATE """{{ .Prompt }}"""\nSYSTEM """short"""\nPARAMETER stop "<|eot_id|>"\n'
    mf = parse_modelfile(legacy)
    assert [c.value for c in mf.commands] == ["/blobs/sha256-abc", "{{ .Prompt }}", "short", "<|eot_id|>"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM m\nBOGUS x\n", f"(line 2): {INVALID_COMMAND}"),
        ("FROM m\nMESSAGE robot hi\n", f"(line 2): {INVALID_ROLE}"),
        ("SYSTEM hi\n", "no FROM line"),
        ('FROM m\nSYSTEM """never closed\n', 'unexpected EOF'),
        ("FROM m\nPARAMETER\n", "(line 2)"),
        ("FROM m\nFROM:x\n", f"(line 2): {INVALID_COMMAND}"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(text)
    assert message in str(info.value)


def test_crlf_and_case_insensitive_keywords() -> None:
    mf = parse_modelfile("from m\r\nsYsTeM hello\r\n\tparameter top_k 5\r\n")
    assert [(c.keyword, c.value) for c in mf.commands] == [("from", "m"), ("system", "hello"), ("parameter", "5")]


def test_create_request_from_name_and_parameters(tmp_path: Path) -> None:
    mf = parse_modelfile("FROM llama3.2\nPARAMETER stop a\nPARAMETER stop b\nPARAMETER temperature 0.2\nPARAMETER low_vram true\n"
                         "MESSAGE user hi\nLICENSE one\nLICENSE two\nREQUIRES v0.14.0\n")
    plan = to_create_request(mf, tmp_path)
    assert plan.uploads == {}
    assert plan.request == {
        "from": "llama3.2",
        "parameters": {"stop": ["a", "b"], "temperature": 0.2},
        "messages": [{"role": "user", "content": "hi"}],
        "license": ["one", "two"],
        "requires": "0.14.0",
    }


def test_create_request_bad_parameter_names_the_line(tmp_path: Path) -> None:
    mf = parse_modelfile("FROM m\n\nPARAMETER temperature warm\n")
    with pytest.raises(ModelfileError) as info:
        to_create_request(mf, tmp_path)
    assert info.value.line == 3
    assert str(info.value) == "(line 3): invalid float value [warm] for parameter 'temperature'"
    with pytest.raises(ModelfileError, match=r"\(line 2\): unknown parameter 'speed'"):
        to_create_request(parse_modelfile("FROM m\nPARAMETER speed 1\n"), tmp_path)
    with pytest.raises(ModelfileError, match="requires must be a valid semver"):
        to_create_request(parse_modelfile("FROM m\nREQUIRES soon\n"), tmp_path)


def test_create_request_from_relative_gguf_and_digest(tmp_path: Path) -> None:
    sub = tmp_path / "weights"
    sub.mkdir()
    gguf = sub / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + b"\x00" * 60)
    digest = sha256_file(gguf)
    plan = to_create_request(parse_modelfile("FROM ./weights/tiny.gguf\nADAPTER weights/tiny.gguf\n"), tmp_path)
    assert plan.request["files"] == {"tiny.gguf": digest}
    assert plan.request["adapters"] == {"tiny.gguf": digest}
    assert plan.uploads == {digest: gguf.absolute()}
    hexd = "a" * 64
    plan = to_create_request(parse_modelfile(f"FROM sha256:{hexd}\n"), tmp_path)
    assert plan.request == {"files": {"model.gguf": f"sha256:{hexd}"}}
    assert plan.uploads == {}
    with pytest.raises(ModelfileError, match="ADAPTER file not found"):
        to_create_request(parse_modelfile("FROM m\nADAPTER ./missing.gguf\n"), tmp_path)


def test_modelfile_through_the_server(tmp_path: Path, model_path: Path) -> None:
    """Modelfile -> create request -> /api/create -> show --modelfile -> same commands."""
    import ollama

    from serverutil import start_server

    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "smol.gguf").symlink_to(model_path)
    text = (
        "FROM ./weights/smol.gguf\n"
        'TEMPLATE """{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ .Prompt }}"""\n'
        "SYSTEM You are a pirate.\n"
        "PARAMETER temperature 0.7\n"
        "PARAMETER stop <|im_end|>\n"
        "PARAMETER stop <|im_start|>\n"
        "LICENSE Apache-2.0\n"
        'MESSAGE user "Hello\nthere"\n'
        "MESSAGE assistant Ahoy\n"
    )
    plan = to_create_request(parse_modelfile(text), tmp_path)
    with start_server({"PYLLAMA_MODELS": str(tmp_path / "models")}) as base:
        client = ollama.Client(host=base)
        for path in plan.uploads.values():
            client.create_blob(path)
        request = dict(plan.request)
        client.create("pirate", from_=request.pop("from", None), **request)
        rendered = client.show("pirate").modelfile
    assert rendered is not None
    original = parse_modelfile(text).commands
    again = parse_modelfile(rendered).commands
    assert again[0].keyword == "from" and again[0].value.endswith(sha256_file(model_path).replace(":", "-"))
    assert [(c.keyword, c.name, c.value) for c in again[1:]] == [(c.keyword, c.name, c.value) for c in original[1:]]
