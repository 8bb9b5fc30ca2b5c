"""Model metadata, special tokens, logging, devices and quantization."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from pyllama import _native


def test_metadata_and_sizes(model):
    meta = model.metadata
    assert meta["general.architecture"] == "llama"
    assert meta["llama.embedding_length"] == 576 == model.n_embd
    assert meta["llama.context_length"] == model.n_ctx_train
    assert isinstance(meta["tokenizer.ggml.tokens"], list)
    assert len(meta["tokenizer.ggml.tokens"]) == model.n_vocab == 49152
    assert model.meta_str("general.architecture") == "llama"
    assert model.meta_str("no.such.key") is None
    assert model.n_params > 100_000_000
    assert model.size > 50_000_000
    assert "llama" in model.description
    assert model.architecture == "llama"
    assert model.ftype.startswith("Q4_1")


def test_special_tokens(model):
    assert model.token_bos == 1
    assert model.token_eos == 2
    assert model.is_eog(model.token_eos)
    assert not model.is_eog(model.tokenize("hello", add_special=False)[0])
    assert not model.is_eog(-1)
    assert model.token_to_piece(model.token_eos) == b"<|im_end|>"
    assert model.token_to_piece(model.token_eos, special=False) == b""
    assert model.tokenize("<|im_start|>", add_special=False, parse_special=True).tolist() == [1]
    assert len(model.tokenize("<|im_start|>", add_special=False, parse_special=False)) > 1
    assert model.add_bos is False


def test_tokenize_roundtrip_and_partial_utf8(model):
    text = "Grüße aus Köln 🦙, naïve café"
    tokens = model.tokenize(text, add_special=False)
    assert tokens.dtype == np.int32
    assert model.detokenize(tokens) == text
    pieces = b"".join(model.token_to_piece(int(t)) for t in tokens)
    assert pieces.decode("utf-8") == text
    long_text = "word " * 5000
    assert len(model.tokenize(long_text)) >= 5000
    assert model.tokenize("").tolist() in ([], [model.token_bos])


def test_llama_logs_reach_python_logging(model_path, caplog):
    _native.set_log_level(logging.INFO)
    try:
        with caplog.at_level(logging.INFO, logger="pyllama.llama_cpp"):
            _native.Model(model_path, vocab_only=True)
        assert any(r.name == "pyllama.llama_cpp" for r in caplog.records)
        assert all("\n" not in r.getMessage() for r in caplog.records)
    finally:
        _native.set_log_level(logging.ERROR)


def test_system_info_and_devices():
    assert "CPU" in _native.system_info()
    devices = _native.devices()
    assert any(d["type"] == "cpu" for d in devices)
    assert all(d["memory_total"] >= 0 for d in devices)
    assert _native.max_parallel_sequences() >= 64
    assert isinstance(_native.supports_gpu_offload(), bool)


def test_quantize(tmp_path, model_path):
    out = tmp_path / "q8.gguf"
    with pytest.raises(ValueError):
        _native.model_quantize(model_path, out, "q9_X")
    with pytest.raises(FileNotFoundError):
        _native.model_quantize(tmp_path / "missing.gguf", out, "q8_0")
    _native.model_quantize(model_path, out, "q8_0", n_threads=1, allow_requantize=True)
    q8 = _native.Model(out)
    assert q8.ftype.startswith("Q8_0")
    ctx = _native.Context(q8, n_ctx=256, n_threads=1)
    batch = _native.Batch(32)
    batch.add_sequence(q8.tokenize("The capital of France is"), 0, 0)
    ctx.decode(batch)
    assert np.isfinite(ctx.logits(-1)).all()
