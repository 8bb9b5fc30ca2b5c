"""What /api/show returns: Modelfile text, parameter listing, model_info, details."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pyllama.store.gguf_meta import ElidedArray, GGUFInfo, human_number
from pyllama.store.model import LocalModel
from pyllama.store.modelfile import Command, Modelfile

# Removed from model_info, as Ollama does.
_HIDDEN_KEYS = frozenset({"general.name", "tokenizer.chat_template"})


_GO_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\v": "\\v",
}


def go_quote(text: str) -> str:
    """Go's strconv.Quote: double quotes, backslash escapes, \\x/\\u for non-printables."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code > 0x7F and not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_float(value: float) -> str:
    """Go's ``%v`` for a float64: shortest digits; exponent form when the
    decimal exponent is below -4 or at least 6 (strconv's 'g', precision -1)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    shortest = repr(abs(value))  # '131072.0', '1e-05', '9.99e-06', '1e+21'
    mant, _, exp_text = shortest.partition("e")
    int_part, _, frac_part = mant.partition(".")
    exponent = int(exp_text or 0)
    if int_part.strip("0"):
        exponent += len(int_part.lstrip("0")) - 1
    else:
        exponent -= len(frac_part) - len(frac_part.lstrip("0")) + 1
    digits = (int_part + frac_part).strip("0") or "0"
    if exponent < -4 or exponent >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"
    if exponent >= 0:
        whole = digits[: exponent + 1].ljust(exponent + 1, "0")
        frac = digits[exponent + 1 :]
    else:
        whole = "0"
        frac = "0" * (-exponent - 1) + digits
    return f"{sign}{whole}" + (f".{frac}" if frac else "")


def go_value(value: Any) -> str:
    """Go's ``%#v`` of a JSON-decoded value (numbers are float64 there)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return go_float(float(value))
    if isinstance(value, str):
        return go_quote(value)
    return go_quote(str(value))


def plain_value(value: Any) -> str:
    """A parameter value as a Modelfile line shows it (``%v``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return go_float(float(value))
    return str(value)


def parameters_text(parameters: dict[str, Any]) -> str:
    """The ``parameters`` string of /api/show: key padded to 30 columns, one value per line."""
    lines: list[str] = []
    for key, value in parameters.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            lines.append(f"{key:<30} {go_value(item)}")
    return "\n".join(lines)


def build_modelfile(model: LocalModel, info: GGUFInfo | None = None) -> Modelfile:
    """The model as Modelfile commands, in the order ``show --modelfile`` uses."""
    commands: list[Command] = []
    if model.model_path is not None:
        commands.append(Command("from", str(model.model_path)))
    for path in model.adapter_paths:
        commands.append(Command("adapter", str(path)))
    if model.draft_path is not None:
        commands.append(Command("draft", str(model.draft_path)))
    for path in model.projector_paths:
        commands.append(Command("from", str(path)))
    if model.template is not None:
        commands.append(Command("template", model.template))
    if model.system:
        commands.append(Command("system", model.system))
    if model.config.renderer:
        commands.append(Command("renderer", model.config.renderer))
    if model.config.parser:
        commands.append(Command("parser", model.config.parser))
    for key, value in model.parameters.items():
        for item in value if isinstance(value, list) else [value]:
            commands.append(Command("parameter", plain_value(item), name=key))
    for text in model.licenses:
        commands.append(Command("license", text))
    for message in model.messages:
        commands.append(Command("message", str(message.get("content", "")), name=str(message.get("role", "user"))))
    return Modelfile(commands)


def render_modelfile(model: LocalModel) -> str:
    """Text of ``show --modelfile``: a header naming the model, then the commands."""
    header = (
        '# Modelfile generated by "pyllama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        f"# FROM {model.name.display_shortest}\n\n"
    )
    return header + build_modelfile(model).render()


def _jsonable(value: Any, verbose: bool) -> Any:
    if isinstance(value, ElidedArray):
        return []
    if isinstance(value, list):
        if not verbose and len(value) > 5:
            return []
        return [_jsonable(v, verbose) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def model_info(info: GGUFInfo | None, verbose: bool) -> dict[str, Any]:
    """GGUF key/values for /api/show; long arrays become ``[]`` unless verbose."""
    if info is None:
        return {}
    out: dict[str, Any] = {}
    for key, value in info.kv.items():
        if key in _HIDDEN_KEYS:
            continue
        out[key] = _jsonable(value, verbose)
    out["general.parameter_count"] = info.parameter_count
    return dict(sorted(out.items()))


def details(model: LocalModel, info: GGUFInfo | None) -> dict[str, Any]:
    """The ``details`` object shared by /api/show, /api/tags and /api/ps."""
    config = model.config
    family = config.model_family or (info.architecture if info else "")
    families = list(config.model_families) or ([family] if family else [])
    parameter_size = config.model_type or (human_number(info.parameter_count) if info else "")
    quantization = config.file_type or (info.file_type if info else "")
    return {
        "parent_model": model.parent_model,
        "format": config.model_format or ("gguf" if info is not None else ""),
        "family": family,
        "families": families or None,
        "parameter_size": parameter_size,
        "quantization_level": quantization,
    }


def format_time(timestamp: float) -> str:
    """RFC 3339 with fraction and local offset, like Go's time.Time JSON."""
    moment = datetime.fromtimestamp(timestamp).astimezone()
    text = moment.isoformat(timespec="microseconds")
    base, _, rest = text.partition(".")
    fraction, offset = rest[:6], rest[6:]
    fraction = fraction.rstrip("0")
    if offset in ("+00:00", "-00:00"):
        offset = "Z"
    return f"{base}{'.' + fraction if fraction else ''}{offset}"


def show_response(model: LocalModel, capabilities: Callable[[LocalModel, GGUFInfo | None], list[str]],
                  verbose: bool = False) -> dict[str, Any]:
    """The /api/show body; empty fields are left out. ``capabilities`` judges the model
    (the templates package does, above the store)."""
    info = model.gguf(materialise_arrays=verbose)
    out: dict[str, Any] = {}
    if model.licenses:
        out["license"] = "\n".join(model.licenses)
    out["modelfile"] = render_modelfile(model)
    if model.parameters:
        out["parameters"] = parameters_text(model.parameters)
    template = model.effective_template(info)
    if template:
        out["template"] = template
    if model.system:
        out["system"] = model.system
    if model.config.renderer:
        out["renderer"] = model.config.renderer
    if model.config.parser:
        out["parser"] = model.config.parser
    out["details"] = details(model, info)
    if model.messages:
        out["messages"] = model.messages
    out["model_info"] = model_info(info, verbose)
    if model.projector_paths:
        from pyllama.store.gguf_meta import GGUFError, read_gguf

        try:
            out["projector_info"] = model_info(read_gguf(model.projector_paths[0], verbose), verbose)
        except GGUFError:
            pass
    if verbose and info is not None:
        out["tensors"] = [{"name": t.name, "type": t.type, "shape": list(t.shape)} for t in info.tensors]
    out["capabilities"] = capabilities(model, info)
    out["modified_at"] = format_time(model.stored.mtime)
    if model.config.requires:
        out["requires"] = model.config.requires
    return out


__all__ = [
    "build_modelfile",
    "details",
    "format_time",
    "go_float",
    "go_quote",
    "model_info",
    "parameters_text",
    "render_modelfile",
    "show_response",
]
