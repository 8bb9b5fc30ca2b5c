"""LoRA adapters in the engine: applied at load (scale 1.0), per-request
scales, exact under batching, never mixed in one decode or one cached prefix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pyllama import _native
from pyllama.engine import Engine, GenerateRequest, InvalidRequestError, SamplingOptions

from engineutil import collect
from ggufutil import write_tiny_llama
from lorautil import PROMPT, assert_same_greedy, assert_same_run, lora_for_tiny, reference_greedy

N = 16


@pytest.fixture(scope="module")
def lora_model(model_path: Path) -> _native.Model:
    """A model of its own: adapters loaded onto it stay registered with it."""
    return _native.Model(model_path)


@pytest.fixture(scope="module")
def adapter(lora_model: _native.Model, lora_path: Path) -> _native.LoraAdapter:
    return lora_model.load_lora(lora_path)


@pytest.fixture(scope="module")
def engine3(lora_model: _native.Model, adapter: _native.LoraAdapter) -> Iterator[Engine]:
    with Engine(lora_model, n_ctx=3 * 512, n_parallel=3, n_batch=256, n_threads=1, lora=[adapter]) as engine:
        yield engine


def _request(scale: float | None, prompt: str = PROMPT, n: int = N) -> GenerateRequest:
    lora = [] if scale is None else [{"id": 0, "scale": scale}]
    return GenerateRequest(prompt=prompt, options=SamplingOptions(temperature=0, num_predict=n, lora=lora),
                           top_logprobs=2)


def _tokens(engine: Engine, request: GenerateRequest) -> list[int]:
    chunks, _ = collect(engine.submit(request))
    return [t for c in chunks for t in c.tokens]


def test_adapter_changes_output_and_matches_the_binding(engine3: Engine, lora_model: _native.Model,
                                                        adapter: _native.LoraAdapter) -> None:
    prompt = lora_model.tokenize(PROMPT)
    tuned = _tokens(engine3, _request(None))
    base = _tokens(engine3, _request(0.0))
    assert tuned != base, "the adapter should change greedy output"
    for scale, got in ((1.0, tuned), (0.0, base)):
        want, rows = reference_greedy(lora_model, [(adapter, scale)], prompt, N, n_ctx=3 * 512, n_seq_max=3)
        assert_same_greedy(got, want, rows)


def test_scale_zero_is_the_base_model(engine3: Engine, model_path: Path) -> None:
    with Engine(model_path, n_ctx=3 * 512, n_parallel=3, n_threads=1) as plain:
        base = collect(plain.submit(_request(None)))[0]
    assert_same_run(base, _tokens(engine3, _request(0.0)))


def test_interleaved_scales_each_give_their_own_output(lora_model: _native.Model,
                                                       adapter: _native.LoraAdapter) -> None:
    """Fresh engines, so every run evaluates its whole prompt: with a LoRA, a
    reused cached prefix (one token evaluated instead of the prompt) shifts
    llama.cpp's numbers enough to flip a greedy pick now and then."""
    def fresh() -> Engine:
        return Engine(lora_model, n_ctx=3 * 512, n_parallel=3, n_batch=256, n_threads=1, lora=[adapter])

    scales = (0.0, 0.5, 1.0)
    with fresh() as engine:  # one after the other: each takes an empty slot
        alone = {s: collect(engine.submit(_request(s, n=24)))[0] for s in scales}
    assert len({tuple(t for c in alone[s] for t in c.tokens) for s in scales}) == 3, "scales should matter"
    for order in (scales, scales[::-1]):
        with fresh() as engine:  # all at once: one decode group per scale in every step
            handles = {s: engine.submit(_request(s, n=24)) for s in order}
            for s, handle in handles.items():
                assert_same_run(alone[s], [t for c in collect(handle)[0] for t in c.tokens])


def test_cached_prefix_is_not_shared_across_scales(lora_model: _native.Model, adapter: _native.LoraAdapter) -> None:
    with Engine(lora_model, n_ctx=512, n_parallel=1, n_threads=1, lora=[adapter]) as engine:
        first = _tokens(engine, _request(1.0))
        _, done = collect(engine.submit(_request(1.0)))
        assert done.cached_tokens > 0  # same setting: the prefix is reused
        _tokens(engine, _request(0.0))
        chunks, done = collect(engine.submit(_request(1.0)))
        assert done.cached_tokens == 0  # the slot's KV was computed with scale 0
        assert [t for c in chunks for t in c.tokens] == first


@pytest.mark.parametrize(("lora", "message"), [
    ([{"id": 1, "scale": 1.0}], "invalid LoRA adapter id 1: the model has 1 adapter(s)"),
    ([{"id": 0, "scale": float("nan")}], "LoRA scales must be finite"),
])
def test_bad_lora_options(engine3: Engine, lora: list[dict[str, float]], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        engine3.submit(GenerateRequest(prompt="x", options=SamplingOptions(lora=lora)))


def test_lora_option_mapping(engine3: Engine) -> None:
    with pytest.raises(InvalidRequestError, match='each "lora" entry'):
        engine3.submit("x", {"lora": [{"id": 0}]})
    with pytest.raises(InvalidRequestError, match="must be of type array"):
        engine3.submit("x", {"lora": {"id": 0, "scale": 1}})
    handle = engine3.submit(PROMPT, {"temperature": 0, "num_predict": 4, "lora": [{"id": 0, "scale": 0}]})
    assert collect(handle)[1].eval_count == 4


def test_adapter_of_another_model_fails_with_both_names(model_path: Path, tmp_path: Path) -> None:
    tiny = write_tiny_llama(tmp_path / "tiny.gguf")
    foreign = lora_for_tiny(tiny, tmp_path / "tiny-lora.gguf")
    with pytest.raises(_native.ModelLoadError) as info:
        Engine(model_path, n_ctx=256, n_threads=1, lora=[foreign])
    assert str(foreign) in str(info.value) and str(model_path) in str(info.value)
