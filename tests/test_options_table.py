"""The one options table: every entry point is derived from it, so one entry reaches all of them."""

from __future__ import annotations

import msgspec
import pytest

from pyllama.engine import InvalidRequestError, SamplingOptions, options_from_mapping
from pyllama.model_ref import ModelRef, RunnerOptions
from pyllama.options import (
    OPTIONS,
    OptionError,
    OptionTypeError,
    check_parameter,
    merge_options,
    parse_parameter_text,
    resolve_num_ctx,
    validate_options,
)
from pyllama.store.modelfile import parse_modelfile, to_create_request

SAMPLE_TEXT = {"int": "1", "float": "0.5", "bool": "true", "string": "x", "list": "END"}
SAMPLE_VALUE = {"speculative": "ngram"}  # options whose values are a fixed set


def test_structs_have_one_field_per_entry() -> None:
    sampling = {n for n, o in OPTIONS.items() if o.applies == "sampling"}
    runner = {n for n, o in OPTIONS.items() if o.runner}
    assert sampling <= set(SamplingOptions.__struct_fields__)
    assert set(SamplingOptions.__struct_fields__) - sampling == {"grammar_lazy", "grammar_triggers", "preserved_tokens"}
    assert set(RunnerOptions.__struct_fields__) == runner
    defaults = msgspec.structs.asdict(SamplingOptions())
    assert all(defaults[n] == (list(o.default) if isinstance(o.default, tuple) else o.default)
               for n, o in OPTIONS.items() if o.applies == "sampling")


@pytest.mark.parametrize("name", [n for n, o in OPTIONS.items() if o.public and not o.request_only])
def test_every_public_option_goes_from_parameter_to_its_struct(name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    option = OPTIONS[name]
    text = SAMPLE_VALUE.get(name, SAMPLE_TEXT[option.type])
    (tmp_path / "Modelfile").write_text(f"FROM x\nPARAMETER {name} {text}\n")
    plan = to_create_request(parse_modelfile((tmp_path / "Modelfile").read_text()), tmp_path)
    stored = plan.request["parameters"]
    assert stored == {name: parse_parameter_text(name, text)}
    merged = merge_options(stored, None)
    if option.runner:
        assert getattr(RunnerOptions.from_mapping(merged), name) == merged[name]
    else:
        assert getattr(options_from_mapping(merged), name) == merged[name]


def test_engine_only_options_are_not_request_options() -> None:
    assert validate_options({"grammar": "root ::= x", "logit_bias": {"1": 2}}) == {}
    with pytest.raises(ValueError, match="unknown parameter 'grammar'"):
        parse_parameter_text("grammar", "root ::= x")
    assert options_from_mapping({"grammar": 'root ::= "a"'}).grammar == 'root ::= "a"'


def test_request_only_structured_option() -> None:
    """``lora`` is one entry: converted where it arrives, converted again unchanged on its
    way into SamplingOptions, checked by its rule, and never a PARAMETER."""
    merged = merge_options(None, {"lora": [{"id": 0, "scale": 1}, {"id": 2.0, "scale": 0.5}]})
    assert merged == {"lora": [{"id": 0, "scale": 1.0}, {"id": 2, "scale": 0.5}]}
    assert options_from_mapping(merged).lora == merged["lora"]
    with pytest.raises(OptionError, match=r'each "lora" entry must be an object \{"id": integer, "scale": number\}'):
        validate_options({"lora": [{"id": 0.5, "scale": 1}]})
    with pytest.raises(OptionTypeError, match='option "lora" must be of type array'):
        validate_options({"lora": {"id": 0, "scale": 1}})
    with pytest.raises(InvalidRequestError, match="LoRA scales must be finite numbers"):
        options_from_mapping({"lora": [{"id": 0, "scale": float("inf")}]})
    for refuse in (lambda: parse_parameter_text("lora", "0"), lambda: check_parameter("lora", [])):
        with pytest.raises(OptionError, match="parameter 'lora' can only be set in a request's options"):
            refuse()


def test_values_are_checked_by_the_table() -> None:
    with pytest.raises(OptionError, match="num_batch must be positive"):
        merge_options({"num_batch": 0}, None)
    with pytest.raises(OptionError, match=r"num_thread must be >= 0 \(0 = automatic\)"):
        merge_options(None, {"num_thread": -1})
    with pytest.raises(InvalidRequestError, match=r"mirostat must be 0 \(off\), 1 or 2, got 5"):
        options_from_mapping({"mirostat": 5})


def test_num_ctx_is_resolved_in_one_place(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert resolve_num_ctx(0, 0, 0) == 4096 and resolve_num_ctx(0, 2048, 0) == 2048
    assert resolve_num_ctx(9000, 0, 8192) == 8192 and resolve_num_ctx(1, 0, 0) == 4 and resolve_num_ctx(-3, 100, 0) == 100
    ref = ModelRef(name="m", path=tmp_path / "m.gguf", n_ctx_train=1024)
    assert RunnerOptions.from_mapping({"num_ctx": 2048}).resolved(ref, 0, 2) == RunnerOptions(num_ctx=1024, num_thread=2)
