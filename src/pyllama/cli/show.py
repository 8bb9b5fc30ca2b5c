"""The model card `pyllama show MODEL` and the REPL's `/show info` print:
Ollama's sections (Model, Capabilities, Projector, Parameters, Metadata,
Tensors, System, License), each an indented table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _human_number(n: int) -> str:
    """Parameter counts as Ollama words them: 135M, 1.2B."""
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value.is_integer() else f"{value:.1f}{unit}"
    return str(n)


def _section(title: str, rows: Sequence[Sequence[str]]) -> list[str]:
    """``  Title`` then rows indented four spaces, columns four spaces apart, then a blank line."""
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell))
    lines = [f"  {title}"]
    for row in rows:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append(("    " + "    ".join(cells)).rstrip())
    return [*lines, ""]


def _head(text: str, n: int) -> list[list[str]]:
    """The first ``n`` non-blank lines, and ``...`` when there are more."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [[line] for line in lines[:n]] + ([["..."]] if len(lines) > n else [])


def _metadata_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        shown, width = [], 1
        for i, item in enumerate(value):
            text = _number(item)
            cost = len(text) + (2 if i else 0)
            if width + cost > 10 and i > 0:
                break
            width += cost
            shown.append(text)
        if len(shown) < len(value):
            return f"[{' '.join(shown)} ...+{len(value) - len(shown)} more]"
        return f"[{' '.join(shown)}]"
    if isinstance(value, (int, float)):
        return _number(value)
    return value if isinstance(value, str) else json.dumps(value)


def _model_rows(info: dict[str, Any]) -> list[list[str]]:
    details = info.get("details") or {}
    model_info = info.get("model_info")
    rows: list[list[str]] = []
    if model_info:
        arch = str(model_info.get("general.architecture") or "")
        if arch:
            rows.append(["architecture", arch])
        params = details.get("parameter_size") or ""
        if not params and isinstance(model_info.get("general.parameter_count"), (int, float)):
            params = _human_number(int(model_info["general.parameter_count"]))
        if params:
            rows.append(["parameters", params])
        for key, label in (("context_length", "context length"), ("embedding_length", "embedding length")):
            value = model_info.get(f"{arch}.{key}")
            if isinstance(value, (int, float)):
                rows.append([label, _number(value)])
    else:
        rows += [["architecture", details.get("family", "")], ["parameters", details.get("parameter_size", "")]]
    rows.append(["quantization", details.get("quantization_level", "")])
    return rows


def _projector_rows(projector: dict[str, Any]) -> list[list[str]]:
    arch = str(projector.get("general.architecture") or "")
    rows = [["architecture", arch]] if arch else []
    if isinstance(projector.get("general.parameter_count"), (int, float)):
        rows.append(["parameters", _human_number(int(projector["general.parameter_count"]))])
    for suffix, label in (("embedding_length", "embedding length"), ("projection_dim", "dimensions")):
        for modality in ("vision", "audio"):
            value = projector.get(f"{arch}.{modality}.{suffix}")
            if isinstance(value, (int, float)):
                rows.append([label, _number(value)])
                break
    return rows


def show_info(info: dict[str, Any], verbose: bool = False) -> str:
    """The whole card; ``verbose`` adds every metadata key and the tensors."""
    lines = _section("Model", _model_rows(info))
    if info.get("capabilities"):
        lines += _section("Capabilities", [[c] for c in info["capabilities"]])
    if info.get("projector_info"):
        lines += _section("Projector", _projector_rows(info["projector_info"]))
    if info.get("parameters"):
        lines += _section("Parameters", [line.split() for line in info["parameters"].splitlines() if line.strip()])
    if verbose and info.get("model_info"):
        model_info = info["model_info"]
        lines += _section("Metadata", [[k, _metadata_value(model_info[k])] for k in sorted(model_info)])
    if verbose and info.get("tensors"):
        lines += _section("Tensors", [[t.get("name", ""), t.get("type", ""), "[" + " ".join(map(str, t.get("shape", []))) + "]"]
                                      for t in info["tensors"]])
    if info.get("system"):
        lines += _section("System", _head(info["system"], 2))
    if info.get("license"):
        lines += _section("License", _head(info["license"], 2))
    return "\n".join(lines)
