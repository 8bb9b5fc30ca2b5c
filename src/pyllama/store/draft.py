"""Can a GGUF draft for a model? Checked from GGUF headers alone.

A draft model proposes token ids the target model verifies, so both must
mean the same thing by every id: the same tokenizer kind, token list and
special tokens. ``create`` runs this so a DRAFT that cannot work is a clear
400 naming both files; the runner checks the loaded models again.
"""

from __future__ import annotations

from pathlib import Path

from pyllama.store.gguf_meta import GGUFError, read_gguf

# The header keys that decide what a token id means.
VOCAB_KEYS = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id",
              "tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_bos_token")


class DraftMismatch(ValueError):
    """The draft's vocabulary is not the model's (the message says how)."""


def check_draft_file(draft: str | Path, model: str | Path) -> None:
    """Raise DraftMismatch unless ``draft`` is a model GGUF with ``model``'s vocabulary."""
    try:
        d, m = read_gguf(draft, materialise_arrays=True), read_gguf(model, materialise_arrays=True)
    except GGUFError as exc:
        raise DraftMismatch(str(exc)) from None
    if d.kv.get("general.type") == "adapter" or "general.architecture" not in d.kv:
        raise DraftMismatch("it is not a model GGUF")
    for key in VOCAB_KEYS:
        if d.kv.get(key) != m.kv.get(key):
            raise DraftMismatch(f"{key} is {d.kv.get(key)!r}, the model's is {m.kv.get(key)!r}")
    tokens, want = d.kv.get("tokenizer.ggml.tokens") or [], m.kv.get("tokenizer.ggml.tokens") or []
    if len(tokens) != len(want):
        raise DraftMismatch(f"it has {len(tokens)} tokens, the model {len(want)}")
    for index, (a, b) in enumerate(zip(tokens, want)):
        if a != b:
            raise DraftMismatch(f"token {index} is {a!r}, the model's is {b!r}")
