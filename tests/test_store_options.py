"""The options table shared by PARAMETER, /api/create and request options."""

from __future__ import annotations

import pytest

from pyllama.options import (
    OPTIONS,
    OptionTypeError,
    default_options,
    parse_parameter_text,
    validate_options,
)
from pyllama.store.create import validate_parameters
from pyllama.store.errors import InvalidRequest


def test_table_matches_spec_types() -> None:
    assert OPTIONS["num_ctx"].type == "int" and OPTIONS["num_ctx"].runner
    assert OPTIONS["temperature"].type == "float" and not OPTIONS["temperature"].runner
    assert OPTIONS["use_mmap"].type == "bool"
    assert OPTIONS["stop"].type == "list"
    defaults = default_options()
    assert defaults["temperature"] == 0.8 and defaults["top_k"] == 40 and defaults["stop"] == []
    assert "main_gpu" not in defaults  # unset by default


def test_validate_options_coerces_and_drops() -> None:
    out = validate_options({"num_ctx": 2048.7, "temperature": 1, "stop": ["a"], "mirostat": 1, "bogus": 3, "seed": None,
                            "tfs_z": 1.0})
    assert out == {"num_ctx": 2048, "temperature": 1.0, "stop": ["a"], "mirostat": 1}  # mirostat is honoured


@pytest.mark.parametrize(
    ("key", "value", "word"),
    [("num_ctx", "big", "integer"), ("temperature", "hot", "float32"), ("use_mmap", 1, "boolean"), ("stop", "x", "array"), ("num_ctx", True, "integer")],
)
def test_validate_options_type_errors(key: str, value: object, word: str) -> None:
    with pytest.raises(OptionTypeError) as info:
        validate_options({key: value})
    assert info.value.status_code == 500
    assert info.value.message == f'option "{key}" must be of type {word}'


def test_validate_parameters_is_strict() -> None:
    assert validate_parameters({"stop": "x", "num_ctx": 4096, "low_vram": True}) == {"stop": ["x"], "num_ctx": 4096}
    with pytest.raises(InvalidRequest, match="unknown parameter 'nope'"):
        validate_parameters({"nope": 1})
    with pytest.raises(InvalidRequest, match='option "top_k" must be of type integer'):
        validate_parameters({"top_k": "many"})


def test_parameter_text() -> None:
    assert parse_parameter_text("num_ctx", "4096") == 4096
    assert parse_parameter_text("temperature", "0.5") == 0.5
    assert parse_parameter_text("use_mmap", "false") is False
    assert parse_parameter_text("stop", "<|eot_id|>") == ["<|eot_id|>"]
    with pytest.raises(ValueError, match=r"invalid float value \[abc\]"):
        parse_parameter_text("temperature", "abc")
    with pytest.raises(ValueError, match=r"invalid int value \[1.5\]"):
        parse_parameter_text("num_ctx", "1.5")
    with pytest.raises(ValueError, match=r"invalid bool value \[maybe\]"):
        parse_parameter_text("use_mmap", "maybe")
