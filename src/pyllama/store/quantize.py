"""Quantization types accepted by /api/create and the call into llama.cpp."""

from __future__ import annotations

from pathlib import Path

from pyllama.store.errors import InvalidRequest, StoreError

# Request spelling (case-insensitive) -> canonical name.
QUANT_TYPES: dict[str, str] = {
    name.lower(): name
    for name in (
        "Q4_0",
        "Q4_1",
        "Q5_0",
        "Q5_1",
        "Q8_0",
        "Q2_K",
        "Q3_K_S",
        "Q3_K_M",
        "Q3_K_L",
        "Q4_K_S",
        "Q4_K_M",
        "Q5_K_S",
        "Q5_K_M",
        "Q6_K",
    )
}
QUANT_ALIASES = {"q3_k": "Q3_K_M", "q4_k": "Q4_K_M", "q5_k": "Q5_K_M"}
QUANTIZABLE_FROM = ("F16", "BF16", "F32")


def canonical_quant_type(requested: str) -> str:
    """Validate a ``quantize`` value; 400 with Ollama's wording when unknown."""
    key = requested.strip().lower()
    name = QUANT_TYPES.get(key) or QUANT_ALIASES.get(key)
    if name is None:
        supported = ", ".join(QUANT_TYPES.values())
        raise InvalidRequest(f"unsupported quantization type {requested} - supported types are {supported}")
    return name


def quantize_file(source: Path, target: Path, quant_type: str) -> None:
    """Run llama.cpp's quantizer (through ``pyllama._native``) from source to target."""
    try:
        from pyllama._native import model_quantize
    except ImportError as exc:
        raise StoreError(f"quantization is unavailable: native extension not built ({exc})") from None
    try:
        model_quantize(str(source), str(target), quant_type, 0)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    except RuntimeError as exc:
        raise StoreError(f"quantization failed: {exc}") from None
