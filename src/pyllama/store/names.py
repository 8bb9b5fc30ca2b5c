"""Model names: ``[scheme://][host/][namespace/]model[:tag]``.

Names are case-preserving but compared case-insensitively, per part.  Every
part is validated against a strict character set before it is used as a
path component, so no name can reach outside the manifests directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyllama.store.errors import InvalidRequest

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
DEFAULT_SCHEME = "https"

_HOST_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}")
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}")
_MODEL_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")


@dataclass(frozen=True)
class ModelName:
    """A fully qualified model name with defaults filled in."""

    host: str
    namespace: str
    model: str
    tag: str
    scheme: str = DEFAULT_SCHEME

    @property
    def parts(self) -> tuple[str, str, str, str]:
        return (self.host, self.namespace, self.model, self.tag)

    @property
    def repository(self) -> str:
        """``namespace/model``, the repository path on a registry."""
        return f"{self.namespace}/{self.model}"

    @property
    def display_shortest(self) -> str:
        """Short form: default host and namespace dropped, tag always shown."""
        if self.host.lower() == DEFAULT_HOST:
            if self.namespace.lower() == DEFAULT_NAMESPACE:
                return f"{self.model}:{self.tag}"
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def display_full(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    def key(self) -> tuple[str, str, str, str]:
        """Case-folded parts, for case-insensitive comparison."""
        return tuple(p.lower() for p in self.parts)  # type: ignore[return-value]

    def equal_fold(self, other: ModelName) -> bool:
        return self.key() == other.key()

    def with_parts(self, parts: tuple[str, str, str, str]) -> ModelName:
        host, namespace, model, tag = parts
        return ModelName(host, namespace, model, tag, self.scheme)

    def __str__(self) -> str:
        return self.display_shortest


def _split_last(s: str, sep: str) -> tuple[str, str] | None:
    """Split at the last ``sep``; None when either side would be empty."""
    index = s.rfind(sep)
    if index < 0:
        return None
    left, right = s[:index], s[index + 1 :]
    if not left or not right:
        raise ValueError("empty name part")
    return left, right


def parse_name(raw: str) -> ModelName:
    """Parse and validate a model name; raise ValueError when invalid."""
    s = raw.strip()
    scheme = DEFAULT_SCHEME
    if "://" in s:
        scheme, s = s.split("://", 1)
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {scheme!r}")
    if not s:
        raise ValueError("empty name")
    tag = DEFAULT_TAG
    if s.rfind(":") > s.rfind("/"):
        split = _split_last(s, ":")
        assert split is not None
        s, tag = split
    host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
    split = _split_last(s, "/")
    if split is None:
        model = s
    else:
        s, model = split
        split = _split_last(s, "/")
        if split is None:
            namespace = s
        else:
            host, namespace = split
            if "/" in host:
                raise ValueError("too many name parts")
    if not _HOST_RE.fullmatch(host):
        raise ValueError(f"invalid host {host!r}")
    if not _NAMESPACE_RE.fullmatch(namespace):
        raise ValueError(f"invalid namespace {namespace!r}")
    if not _MODEL_RE.fullmatch(model):
        raise ValueError(f"invalid model {model!r}")
    if not _MODEL_RE.fullmatch(tag):
        raise ValueError(f"invalid tag {tag!r}")
    if ".." in host or ".." in model or ".." in tag:
        raise ValueError("consecutive dots")
    return ModelName(host, namespace, model, tag, scheme)


def parse_name_or_400(raw: str, message: str = "invalid model name") -> ModelName:
    """Parse a name from a request, mapping failure to a 400 with ``message``."""
    try:
        return parse_name(raw)
    except ValueError:
        raise InvalidRequest(message) from None
