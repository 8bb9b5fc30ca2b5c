"""Model names: parsing, defaults, validation, display and case folding."""

from __future__ import annotations

import pytest

from pyllama.store.errors import InvalidRequest
from pyllama.store.names import ModelName, parse_name, parse_name_or_400


@pytest.mark.parametrize(
    ("raw", "parts", "short"),
    [
        ("llama3.2", ("registry.ollama.ai", "library", "llama3.2", "latest"), "llama3.2:latest"),
        ("llama3.2:1b", ("registry.ollama.ai", "library", "llama3.2", "1b"), "llama3.2:1b"),
        ("user/m:v1", ("registry.ollama.ai", "user", "m", "v1"), "user/m:v1"),
        ("example.com:5000/ns/m:t", ("example.com:5000", "ns", "m", "t"), "example.com:5000/ns/m:t"),
        ("example.com/library/m", ("example.com", "library", "m", "latest"), "example.com/library/m:latest"),
        ("https://example.com/ns/m", ("example.com", "ns", "m", "latest"), "example.com/ns/m:latest"),
        ("registry.ollama.ai/library/Llama3:LATEST", ("registry.ollama.ai", "library", "Llama3", "LATEST"), "Llama3:LATEST"),
        ("  spaced  ", ("registry.ollama.ai", "library", "spaced", "latest"), "spaced:latest"),
        ("a_b-c.d:e_f-g.h", ("registry.ollama.ai", "library", "a_b-c.d", "e_f-g.h"), "a_b-c.d:e_f-g.h"),
    ],
)
def test_parse_and_display(raw: str, parts: tuple[str, str, str, str], short: str) -> None:
    name = parse_name(raw)
    assert name.parts == parts
    assert name.display_shortest == short


def test_scheme_is_kept_for_insecure_check() -> None:
    assert parse_name("http://h:1/ns/m").scheme == "http"
    assert parse_name("h:1/ns/m").scheme == "https"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "/m",
        "m:",
        "a//m",
        ":tag",
        "ns/",
        "../m",
        "m/..",
        "..",
        ".hidden",
        "ns/m:../../etc",
        "ns.dot/m",
        "a/b/c/d",
        "m:t:u",
        "-m",
        "m with space",
        "m%2f",
        "x" * 81,
        "m:" + "t" * 81,
        "ns" * 41 + "/m",
        "h" * 351 + "/ns/m",
        "host..com/ns/m",
        "m\x00",
        "ftp://h/ns/m",
        "mödel",
    ],
)
def test_invalid_names(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_name(raw)
    with pytest.raises(InvalidRequest) as info:
        parse_name_or_400(raw)
    assert info.value.status_code == 400
    assert info.value.message == "invalid model name"


def test_length_limits_accept_maximum() -> None:
    assert parse_name("m" * 80 + ":" + "t" * 80).model == "m" * 80
    assert parse_name("n" * 80 + "/m").namespace == "n" * 80
    assert parse_name("h" * 350 + "/ns/m").host == "h" * 350


def test_case_insensitive_equality() -> None:
    a = parse_name("Llama3.2:LATEST")
    b = parse_name("llama3.2")
    assert a.equal_fold(b)
    assert a != b  # case is preserved
    assert isinstance(a, ModelName)
