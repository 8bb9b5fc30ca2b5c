"""A parsed Go template: parse once, render many times."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pyllama.templates.gotemplate.exec import Executor
from pyllama.templates.gotemplate.funcs import BUILTINS, LAZY
from pyllama.templates.gotemplate.nodes import ListNode
from pyllama.templates.gotemplate.parser import parse


class _FuncNames:
    """Function names visible to the parser: builtins, ``and``/``or`` and extras."""

    def __init__(self, funcs: Mapping[str, Callable[..., Any]]) -> None:
        self.funcs = funcs

    def __contains__(self, name: object) -> bool:
        return name in self.funcs or name in LAZY


class Template:
    """Go ``text/template`` source compiled to a tree.

    ``funcs`` adds functions to Go's builtins (Ollama adds ``json`` and a
    few more). The tree is immutable after parsing, so one instance may be
    rendered from many threads at once.
    """

    def __init__(self, source: str, funcs: Mapping[str, Callable[..., Any]] | None = None, name: str = "") -> None:
        self.source = source
        self.name = name
        self.funcs: dict[str, Callable[..., Any]] = {**BUILTINS, **(funcs or {})}
        self.root, self.defines = parse(source, _FuncNames(self.funcs), name)

    def render(self, data: Any, root: ListNode | None = None) -> str:
        """Execute the template (or another tree over the same source) with ``data`` as dot."""
        executor = Executor(self.source, self.funcs, self.defines, self.name)
        return executor.execute(self.root if root is None else root, data)
