"""Modelfile parsing and rendering.

The grammar follows Ollama's parser: one ``INSTRUCTION arguments`` per line,
case-insensitive keywords, ``#`` comments, and values that may be wrapped in
``"..."`` or ``\"\"\"...\"\"\"`` to span lines.  Rendering produces what
``ollama show --modelfile`` prints, and the parser accepts both that and the
older always-quoted form.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyllama.store.fsutil import sha256_file
from pyllama.store.manifest import DIGEST_RE, normalize_digest
from pyllama.options import DEPRECATED_PARAMETERS, parse_parameter_text

log = logging.getLogger(__name__)

KEYWORDS = (
    "from",
    "license",
    "template",
    "system",
    "adapter",
    "draft",
    "renderer",
    "parser",
    "parameter",
    "message",
    "requires",
)
INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "draft", '
    '"renderer", "parser", "parameter", "message", or "requires"'
)
INVALID_ROLE = 'message role must be one of "system", "user", or "assistant"'
MESSAGE_ROLES = ("system", "user", "assistant")
SEMVER_RE = re.compile(r"^v?(0|[1-9]\d*)(\.(0|[1-9]\d*)(\.(0|[1-9]\d*))?)?(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


class ModelfileError(ValueError):
    """A Modelfile problem; ``str()`` carries ``(line N): `` when known."""

    def __init__(self, message: str, line: int = 0) -> None:
        self.line = line
        self.msg = message
        super().__init__(f"(line {line}): {message}" if line > 0 else message)


@dataclass
class Command:
    """One instruction.  ``name`` is the parameter name or the message role."""

    keyword: str
    value: str
    name: str = ""
    line: int = 0

    def render(self) -> str:
        if self.keyword == "from":
            return f"FROM {self.value}"
        if self.keyword == "parameter":
            return f"PARAMETER {self.name} {quote(self.value)}"
        if self.keyword == "message":
            return f"MESSAGE {self.name} {quote(self.value)}"
        return f"{self.keyword.upper()} {quote(self.value)}"


@dataclass
class Modelfile:
    commands: list[Command] = field(default_factory=list)

    def render(self) -> str:
        return "".join(cmd.render() + "\n" for cmd in self.commands)

    def of(self, keyword: str) -> list[Command]:
        return [cmd for cmd in self.commands if cmd.keyword == keyword]


def quote(value: str) -> str:
    """Quote a value only when it needs it (newline, edge spaces), as Ollama does."""
    if "\n" in value or value.startswith(" ") or value.endswith(" "):
        if '"' in value:
            return f'"""{value}"""'
        return f'"{value}"'
    return value


def _unquote(text: str) -> tuple[str, bool]:
    """Strip one level of ``\"\"\"`` or ``"`` quoting; False while still open."""
    if text.startswith('"""'):
        if len(text) >= 6 and text.endswith('"""'):
            return text[3:-3], True
        return "", False
    if text.startswith('"'):
        if len(text) >= 2 and text.endswith('"'):
            return text[1:-1], True
        return "", False
    return text, True


def parse_modelfile(text: str) -> Modelfile:
    """Parse Modelfile text; raise ModelfileError naming the line on errors."""
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        line_no = i + 1
        stripped = lines[i].lstrip(" \t")
        i += 1
        if not stripped or stripped.startswith("#"):
            continue
        match = re.match(r"[A-Za-z]+", stripped)
        keyword_raw = match.group(0) if match else ""
        rest = stripped[len(keyword_raw) :]
        if not keyword_raw or not rest[:1] in (" ", "\t") or keyword_raw.lower() not in KEYWORDS:
            if keyword_raw.lower() in KEYWORDS and not rest:
                raise ModelfileError(f"missing value for {keyword_raw.upper()}", line_no)
            raise ModelfileError(INVALID_COMMAND, line_no)
        keyword = keyword_raw.lower()
        rest = rest.lstrip(" \t")
        name = ""
        if keyword in ("parameter", "message"):
            m = re.match(r"[A-Za-z0-9_]+" if keyword == "parameter" else r"[A-Za-z]+", rest)
            name = m.group(0) if m else ""
            after = rest[len(name) :]
            if keyword == "message" and name and name not in MESSAGE_ROLES:
                raise ModelfileError(INVALID_ROLE, line_no)
            if not name or not after[:1] in (" ", "\t"):
                if keyword == "message" and name and not after:
                    raise ModelfileError("missing message text", line_no)
                raise ModelfileError(
                    f"missing value for {keyword.upper()}" if not after.strip() else f"invalid {keyword} line",
                    line_no,
                )
            rest = after.lstrip(" \t")
        # Accumulate lines until the value's quotes balance.
        buffer = rest
        while True:
            value, ok = _unquote(buffer.strip(" \t"))
            if ok:
                break
            if i >= len(lines):
                raise ModelfileError(f"unexpected EOF: {buffer}", line_no)
            buffer += "\n" + lines[i]
            i += 1
        commands.append(Command(keyword, value, name, line_no))
    if not any(cmd.keyword == "from" for cmd in commands):
        raise ModelfileError("no FROM line")
    return Modelfile(commands)


def _expand(value: str, base_dir: Path) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    return path.absolute()


@dataclass
class CreatePlan:
    """A Modelfile turned into an /api/create body plus the files to upload first."""

    request: dict[str, Any]
    uploads: dict[str, Path]  # digest -> local file


def _file_digests(cmd: Command, base_dir: Path, uploads: dict[str, Path]) -> dict[str, str] | None:
    """Digest map for a path-valued command, None when it is not a local path or digest."""
    if DIGEST_RE.match(cmd.value):
        digest = normalize_digest(cmd.value)
        return {"model.gguf" if cmd.keyword == "from" else f"{cmd.keyword}.gguf": digest}
    path = _expand(cmd.value, base_dir)
    if not path.exists():
        return None
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if not ggufs:
            raise ModelfileError(
                "only GGUF files are supported (safetensors conversion is not available)", cmd.line
            )
        files = ggufs
    else:
        files = [path]
    out: dict[str, str] = {}
    for file in files:
        digest = sha256_file(file)
        uploads[digest] = file
        out[file.name] = digest
    return out


def to_create_request(modelfile: Modelfile, base_dir: Path | str) -> CreatePlan:
    """Resolve a parsed Modelfile against ``base_dir`` into an /api/create body.

    FROM may be a model name, a GGUF path (relative to the Modelfile, ``~``
    expanded) or a ``sha256:`` blob digest.  PARAMETER values are checked
    against the options table; a bad one raises ModelfileError with its line.
    """
    base = Path(base_dir)
    request: dict[str, Any] = {}
    uploads: dict[str, Path] = {}
    params: dict[str, Any] = {}
    licenses: list[str] = []
    messages: list[dict[str, str]] = []
    for cmd in modelfile.commands:
        if cmd.keyword == "from":
            files = _file_digests(cmd, base, uploads)
            if files is None:
                request["from"] = cmd.value
            else:
                request.setdefault("files", {}).update(files)
        elif cmd.keyword in ("adapter", "draft"):
            files = _file_digests(cmd, base, uploads)
            if files is None:
                raise ModelfileError(f"{cmd.keyword.upper()} file not found: {cmd.value}", cmd.line)
            request["adapters" if cmd.keyword == "adapter" else "draft_files"] = files
        elif cmd.keyword in ("template", "system", "renderer", "parser"):
            request[cmd.keyword] = cmd.value
        elif cmd.keyword == "license":
            licenses.append(cmd.value)
        elif cmd.keyword == "requires":
            if not SEMVER_RE.match(cmd.value):
                raise ModelfileError("requires must be a valid semver (e.g. 0.14.0)", cmd.line)
            request["requires"] = cmd.value.removeprefix("v")
        elif cmd.keyword == "message":
            messages.append({"role": cmd.name, "content": cmd.value})
        elif cmd.keyword == "parameter":
            if cmd.name in DEPRECATED_PARAMETERS:
                log.warning("parameter %s is deprecated", cmd.name)
                continue
            try:
                value = parse_parameter_text(cmd.name, cmd.value)
            except ValueError as exc:
                raise ModelfileError(f"{exc} for parameter '{cmd.name}'" if "[" in str(exc) else str(exc), cmd.line) from None
            if isinstance(value, list):
                params.setdefault(cmd.name, []).extend(value)
            else:
                params[cmd.name] = value
    if params:
        request["parameters"] = params
    if licenses:
        request["license"] = licenses
    if messages:
        request["messages"] = messages
    return CreatePlan(request, uploads)


__all__ = ["CreatePlan", "Modelfile", "ModelfileError", "parse_modelfile", "quote", "sha256_file", "to_create_request"]
