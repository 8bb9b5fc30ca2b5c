"""Does a LoRA adapter fit its base model? Checked from GGUF headers alone.

``create`` runs this so a mismatch is a clear 400 naming both files, not a
runner that fails (or, worse, a model that silently answers from its base
weights). The rules are the ones llama.cpp's adapter loader enforces
(``llama-adapter.cpp``): an adapter GGUF of type ``lora`` for the same
architecture, ``<tensor>.lora_a``/``.lora_b`` pairs naming tensors of the
base, with A of ggml shape [n_in, rank] and B [rank, n_out] (flipped for
``token_embd``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyllama.store.gguf_meta import GGUFError, GGUFInfo, TensorInfo, read_gguf

_A, _B = ".lora_a", ".lora_b"
# What llama.cpp's LoRA converter writes. Its loader takes any type, and the
# CPU backend then crashes on a product it has no kernel for (F64, say).
TENSOR_TYPES = frozenset({"F32", "F16", "BF16", "Q8_0"})


class AdapterMismatch(ValueError):
    """The adapter cannot be applied to the base model (the message says why)."""


def _pairs(adapter: GGUFInfo) -> dict[str, dict[str, TensorInfo]]:
    pairs: dict[str, dict[str, TensorInfo]] = {}
    for tensor in adapter.tensors:
        for suffix in (_A, _B):
            if tensor.name.endswith(suffix):
                pairs.setdefault(tensor.name[: -len(suffix)], {})[suffix] = tensor
                break
        else:
            if not tensor.name.endswith("_norm.weight"):  # llama.cpp skips these too
                raise AdapterMismatch(f"tensor '{tensor.name}' is not a LoRA tensor (.lora_a/.lora_b)")
    return pairs


def check_adapter(adapter: GGUFInfo, base: GGUFInfo) -> None:
    """Raise AdapterMismatch unless llama.cpp would load ``adapter`` onto ``base``."""
    kind = adapter.kv.get("general.type")
    if kind != "adapter":
        raise AdapterMismatch(f"general.type is {kind!r}, not 'adapter'")
    if adapter.kv.get("adapter.type") != "lora":
        raise AdapterMismatch(f"adapter.type is {adapter.kv.get('adapter.type')!r}; only 'lora' adapters are supported")
    if adapter.architecture != base.architecture:
        raise AdapterMismatch(f"the adapter is for architecture '{adapter.architecture}', "
                              f"the model is '{base.architecture}'")
    shapes = {t.name: t.shape for t in base.tensors}
    pairs = _pairs(adapter)
    if not pairs:
        raise AdapterMismatch("it holds no LoRA tensors")
    for name, pair in sorted(pairs.items()):
        a, b = pair.get(_A), pair.get(_B)
        if a is None or b is None:
            raise AdapterMismatch(f"the LoRA pair for '{name}' is missing one of its tensors")
        for tensor in (a, b):
            if tensor.type not in TENSOR_TYPES:
                raise AdapterMismatch(f"tensor '{tensor.name}' is {tensor.type}; LoRA tensors must be one of "
                                      f"{', '.join(sorted(TENSOR_TYPES))}")
        w = shapes.get(name)
        if w is None:
            raise AdapterMismatch(f"the model has no tensor '{name}'")
        if len(w) < 2 or len(a.shape) != 2 or len(b.shape) != 2:
            raise AdapterMismatch(f"tensor '{name}' is not a matrix on both sides")
        if name.endswith("token_embd.weight"):
            fits = w[0] == b.shape[1] and w[1] == a.shape[1]
        else:
            fits = w[0] == a.shape[0] and w[1] == b.shape[1] and a.shape[1] == b.shape[0]
        if not fits:
            raise AdapterMismatch(f"tensor '{name}' has shape {list(w[:2])} in the model, the adapter's A/B are "
                                  f"{list(a.shape)}/{list(b.shape)}")


def check_adapter_file(adapter: str | Path, model: str | Path) -> None:
    """``check_adapter`` for two files; an unreadable header is a mismatch too."""
    try:
        adapter_info, model_info = read_gguf(adapter), read_gguf(model)
    except GGUFError as exc:
        raise AdapterMismatch(str(exc)) from None
    check_adapter(adapter_info, model_info)


def adapter_entries(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """How /api/show and /api/ps list a model's adapters: the id a request's
    ``lora`` option uses, and the blob's digest."""
    return [{"id": index, "digest": blob_digest(path)} for index, path in enumerate(paths)]


def blob_digest(path: Path) -> str:
    """A blob's digest from its file name (``sha256-x`` -> ``sha256:x``); other files by name."""
    name = Path(path).name
    return name.replace("-", ":", 1) if name.startswith("sha256-") else name
