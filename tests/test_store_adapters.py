"""The create-time check that a LoRA adapter fits its base model (GGUF headers only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from ggufutil import write_tiny_llama
from lorautil import lora_for_tiny
from pyllama.store.adapters import AdapterMismatch, adapter_entries, check_adapter, check_adapter_file
from pyllama.store.gguf_meta import read_gguf


def _adapter(path: Path, tensors: dict[str, tuple[int, ...]], arch: str = "llama", kind: str = "lora",
             dtype: type = np.float32) -> Path:
    writer = GGUFWriter(str(path), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", kind)
    writer.add_float32("adapter.lora.alpha", 8.0)
    for name, shape in tensors.items():
        writer.add_tensor(name, np.zeros(shape, dtype=dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("base") / "base.gguf")  # n_embd 256, n_ff 512


def test_fitting_adapter_passes(base: Path, tmp_path: Path) -> None:
    check_adapter(read_gguf(lora_for_tiny(base, tmp_path / "lora.gguf")), read_gguf(base))
    # token_embd's pair is flipped (llama.cpp's layout): ggml A [rank, n_vocab], B [rank, n_embd].
    check_adapter(read_gguf(_adapter(tmp_path / "embd.gguf", {
        "token_embd.weight.lora_a": (64, 4), "token_embd.weight.lora_b": (256, 4)})), read_gguf(base))


@pytest.mark.parametrize(("tensors", "arch", "kind", "message"), [
    ({"blk.0.attn_q.weight.lora_a": (4, 256), "blk.0.attn_q.weight.lora_b": (256, 4)}, "gemma3", "lora",
     "the adapter is for architecture 'gemma3', the model is 'llama'"),
    ({"blk.0.attn_q.weight.lora_a": (4, 256), "blk.0.attn_q.weight.lora_b": (256, 4)}, "llama", "cvec",
     "only 'lora' adapters are supported"),
    ({"blk.0.attn_q.weight.lora_a": (4, 256)}, "llama", "lora",
     "the LoRA pair for 'blk.0.attn_q.weight' is missing one of its tensors"),
    ({"blk.7.attn_q.weight.lora_a": (4, 256), "blk.7.attn_q.weight.lora_b": (256, 4)}, "llama", "lora",
     "the model has no tensor 'blk.7.attn_q.weight'"),
    ({"blk.0.ffn_up.weight.lora_a": (4, 576), "blk.0.ffn_up.weight.lora_b": (512, 4)}, "llama", "lora",
     "tensor 'blk.0.ffn_up.weight' has shape [256, 512] in the model, the adapter's A/B are [576, 4]/[4, 512]"),
    ({"blk.0.attn_q.weight": (256, 256)}, "llama", "lora", "tensor 'blk.0.attn_q.weight' is not a LoRA tensor"),
    ({}, "llama", "lora", "it holds no LoRA tensors"),
])
def test_mismatches_say_why(base: Path, tmp_path: Path, tensors: dict[str, tuple[int, ...]], arch: str, kind: str,
                            message: str) -> None:
    adapter = read_gguf(_adapter(tmp_path / "a.gguf", tensors, arch, kind))
    with pytest.raises(AdapterMismatch) as info:
        check_adapter(adapter, read_gguf(base))
    assert message in str(info.value)


def test_tensor_types_llama_cpp_cannot_multiply_are_refused(base: Path, tmp_path: Path) -> None:
    """llama.cpp loads an F64 adapter, then crashes in its first decode."""
    path = _adapter(tmp_path / "f64.gguf", {"blk.0.attn_q.weight.lora_a": (4, 256),
                                            "blk.0.attn_q.weight.lora_b": (256, 4)}, dtype=np.float64)
    with pytest.raises(AdapterMismatch, match="tensor 'blk.0.attn_q.weight.lora_a' is F64; LoRA tensors must be one of"):
        check_adapter_file(path, base)


def test_a_model_is_not_an_adapter(base: Path) -> None:
    with pytest.raises(AdapterMismatch, match="general.type is None, not 'adapter'"):
        check_adapter(read_gguf(base), read_gguf(base))


def test_entries_name_ids_and_digests() -> None:
    assert adapter_entries([Path("/m/blobs/sha256-ab"), Path("x.gguf")]) == [
        {"id": 0, "digest": "sha256:ab"}, {"id": 1, "digest": "x.gguf"}]
