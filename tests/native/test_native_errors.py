"""Bad input becomes a Python exception, and the process keeps working."""
from __future__ import annotations

import numpy as np
import pytest

from pyllama import _native


def still_works(model: _native.Model) -> None:
    ctx = _native.Context(model, n_ctx=256, n_threads=1)
    batch = _native.Batch(64)
    batch.add_sequence(model.tokenize("Hello"), 0, 0)
    ctx.decode(batch)
    assert np.isfinite(ctx.logits(-1)).all()


def test_missing_file(tmp_path, model):
    with pytest.raises(FileNotFoundError):
        _native.Model(tmp_path / "nope.gguf")
    still_works(model)


def test_truncated_gguf(tmp_path, model_path, model):
    broken = tmp_path / "truncated.gguf"
    broken.write_bytes(model_path.read_bytes()[: 4 * 1024 * 1024])
    with pytest.raises(_native.ModelLoadError):
        _native.Model(broken)
    still_works(model)


def test_garbage_file(tmp_path, model):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    with pytest.raises(_native.ModelLoadError):
        _native.Model(junk)
    with pytest.raises(_native.ModelLoadError):
        _native.read_gguf_metadata(junk)
    still_works(model)


def test_corrupted_header_built_with_gguf(tmp_path, model):
    """A well-formed GGUF that names an architecture llama.cpp lacks."""
    import gguf

    path = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(path), "no-such-arch")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert _native.read_gguf_metadata(path)["general.architecture"] == "no-such-arch"
    with pytest.raises(_native.ModelLoadError):
        _native.Model(path)
    still_works(model)


def test_out_of_range_token(model):
    ctx = _native.Context(model, n_ctx=256, n_threads=1)
    batch = _native.Batch(8)
    batch.add(model.n_vocab + 5, 0, 0, True)
    with pytest.raises(IndexError):
        ctx.decode(batch)
    with pytest.raises(ValueError):
        batch.add(-3, 1, 0)
    with pytest.raises(IndexError):
        model.token_to_piece(model.n_vocab)
    with pytest.raises(IndexError):
        model.detokenize([1, model.n_vocab])
    still_works(model)


def test_bad_sequence_ids_and_positions(model):
    ctx = _native.Context(model, n_ctx=512, n_seq_max=2, n_threads=1)
    batch = _native.Batch(8, n_seq_max=2)
    batch.add(1, 0, 5, True)
    with pytest.raises(ValueError):
        ctx.decode(batch)
    with pytest.raises(ValueError):
        batch.add(1, -1, 0)
    with pytest.raises(ValueError):
        batch.add(1, 0, [0, 1, 1])  # more sequences than n_seq_max
    for op in (lambda: ctx.seq_rm(7), lambda: ctx.seq_keep(2), lambda: ctx.seq_pos_max(-2),
               lambda: ctx.seq_cp(0, 9), lambda: ctx.seq_add(3, 0, -1, 1),
               lambda: ctx.state_seq_get(4), lambda: ctx.seq_embeddings(11)):
        with pytest.raises(ValueError):
            op()
    # A gap in positions is reported by llama.cpp as an invalid batch.
    batch.clear()
    batch.add_sequence(model.tokenize("Hello there"), 0, 0)
    ctx.decode(batch)
    batch.clear()
    batch.add(1, 100, 0, True)
    with pytest.raises(_native.DecodeError) as info:
        ctx.decode(batch)
    assert info.value.code == -1
    still_works(model)


def test_batch_over_capacity(model):
    batch = _native.Batch(4)
    for i in range(4):
        batch.add(1, i, 0)
    with pytest.raises(OverflowError):
        batch.add(1, 4, 0)
    with pytest.raises(OverflowError):
        batch.add_sequence([1, 2], 4, 0)
    ctx = _native.Context(model, n_ctx=256, n_batch=32, n_threads=1)
    big = _native.Batch(64)
    big.add_sequence(np.ones(40, dtype=np.int32), 0, 0)
    with pytest.raises(OverflowError):
        ctx.decode(big)
    with pytest.raises(ValueError):
        ctx.decode(_native.Batch(4))  # empty
    still_works(model)


def test_decode_on_full_kv_cache(model):
    ctx = _native.Context(model, n_ctx=256, n_batch=256, n_threads=1)
    assert ctx.n_ctx == 256
    batch = _native.Batch(256)
    batch.add_sequence(np.full(250, 28, dtype=np.int32), 0, 0)
    ctx.decode(batch)
    batch.clear()
    batch.add_sequence(np.full(20, 28, dtype=np.int32), 250, 0)
    with pytest.raises(_native.KVCacheFullError) as info:
        ctx.decode(batch)
    assert info.value.code == 1
    # Memory is unchanged and the context is still usable.
    assert ctx.seq_pos_max(0) == 249
    batch.clear()
    batch.add(28, 250, 0, True)
    ctx.decode(batch)
    assert ctx.seq_pos_max(0) == 250
    still_works(model)


def test_logits_of_non_output_index(model):
    ctx = _native.Context(model, n_ctx=256, n_threads=1)
    batch = _native.Batch(16)
    batch.add_sequence(model.tokenize("one two three"), 0, 0)
    ctx.decode(batch)
    with pytest.raises(IndexError):
        ctx.logits(0)
    with pytest.raises(IndexError):
        ctx.logits(99)
    with pytest.raises(IndexError):
        _native.Sampler().add_greedy().sample(ctx, 0)


def test_bad_sampler_inputs(model):
    with pytest.raises(ValueError):
        _native.Sampler().add_grammar(model, "root ::= (((")
    with pytest.raises(ValueError):
        _native.json_schema_to_grammar('{"type": "object", "properties": 5}')
    with pytest.raises(IndexError):
        _native.Sampler().add_logit_bias(model, {model.n_vocab: 1.0})
    ctx = _native.Context(model, n_ctx=256, n_threads=1)
    batch = _native.Batch(16)
    batch.add_sequence(model.tokenize("Hi"), 0, 0)
    ctx.decode(batch)
    with pytest.raises(ValueError):
        _native.Sampler().sample(ctx, -1)  # empty chain
    with pytest.raises(_native.LlamaError):
        _native.Sampler().add_top_k(5).sample(ctx, -1)  # no picker


def test_bad_context_parameters(model):
    with pytest.raises(ValueError):
        _native.Context(model, n_seq_max=0)
    with pytest.raises(ValueError):
        _native.Context(model, n_seq_max=100000)
    with pytest.raises(ValueError):
        _native.Context(model, type_k="q9_9")
    with pytest.raises(ValueError):
        _native.Context(model, pooling="sideways")
    with pytest.raises(ValueError):
        _native.Model(__file__, load_mode="weird")
