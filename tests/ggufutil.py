"""Tiny GGUF files for tests that need odd shapes (embedding, vision, F32)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFWriter, LlamaFileType


def write_tiny_llama(
    path: Path,
    *,
    n_embd: int = 256,
    n_ff: int = 512,
    n_vocab: int = 64,
    arch: str = "llama",
    extra_kv: dict[str, Any] | None = None,
    seed: int = 0,
) -> Path:
    """A one-block llama-shaped F32 model: valid input for llama.cpp's quantizer."""
    rng = np.random.default_rng(seed)
    writer = GGUFWriter(str(path), arch)
    writer.add_name("tiny")
    writer.add_context_length(128)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_rope_dimension_count(n_embd // 4)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"t{i}" for i in range(n_vocab)])
    writer.add_token_types([1] * n_vocab)
    for key, value in (extra_kv or {}).items():
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        else:
            writer.add_string(key, str(value))

    def tensor(name: str, *shape: int) -> None:
        writer.add_tensor(name, rng.standard_normal(shape, dtype=np.float32) * 0.02)

    tensor("token_embd.weight", n_vocab, n_embd)
    tensor("output_norm.weight", n_embd)
    tensor("output.weight", n_vocab, n_embd)
    tensor("blk.0.attn_norm.weight", n_embd)
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        tensor(f"blk.0.{name}.weight", n_embd, n_embd)
    tensor("blk.0.ffn_norm.weight", n_embd)
    tensor("blk.0.ffn_gate.weight", n_ff, n_embd)
    tensor("blk.0.ffn_up.weight", n_ff, n_embd)
    tensor("blk.0.ffn_down.weight", n_embd, n_ff)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def with_chat_template(source: Path, path: Path, template: str) -> Path:
    """A copy of ``source`` whose ``tokenizer.chat_template`` is ``template``
    (for a model whose own template has no tool-call format llama.cpp knows)."""
    from gguf import GGUFReader, Keys
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata
    from gguf.constants import GGUFValueType

    reader = GGUFReader(source, "r")
    arch = reader.fields[Keys.General.ARCHITECTURE].contents()
    writer = GGUFWriter(str(path), arch, endianess=reader.endianess)
    alignment = reader.fields.get(Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    copy_with_new_metadata(reader, writer, {Keys.Tokenizer.CHAT_TEMPLATE: MetadataDetails(GGUFValueType.STRING, template)},
                           [])
    return path
