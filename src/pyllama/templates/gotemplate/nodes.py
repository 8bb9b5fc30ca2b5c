"""Syntax tree of a parsed Go template (mirrors text/template/parse's node kinds)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(slots=True)
class Node:
    pos: int


@dataclass(slots=True)
class TextNode(Node):
    text: str


@dataclass(slots=True)
class FieldNode(Node):
    idents: tuple[str, ...]  # .A.B -> ("A", "B")


@dataclass(slots=True)
class VariableNode(Node):
    idents: tuple[str, ...]  # $x.A -> ("$x", "A")


@dataclass(slots=True)
class IdentifierNode(Node):
    name: str  # a function name


@dataclass(slots=True)
class DotNode(Node):
    pass


@dataclass(slots=True)
class NilNode(Node):
    pass


@dataclass(slots=True)
class BoolNode(Node):
    value: bool


@dataclass(slots=True)
class NumberNode(Node):
    value: int | float
    text: str


@dataclass(slots=True)
class StringNode(Node):
    value: str


@dataclass(slots=True)
class ChainNode(Node):
    node: Node
    fields: tuple[str, ...]


@dataclass(slots=True)
class CommandNode(Node):
    args: list[Node]


@dataclass(slots=True)
class PipeNode(Node):
    decl: list[str]  # declared / assigned variable names
    is_assign: bool
    cmds: list[CommandNode]


@dataclass(slots=True)
class ActionNode(Node):
    pipe: PipeNode


@dataclass(slots=True)
class ListNode(Node):
    nodes: list[Node] = field(default_factory=list)


@dataclass(slots=True)
class BranchNode(Node):
    """``if``, ``range`` and ``with``: a pipeline, a body and an optional else."""

    kind: str
    pipe: PipeNode
    body: ListNode
    else_body: ListNode | None


@dataclass(slots=True)
class BreakNode(Node):
    pass


@dataclass(slots=True)
class ContinueNode(Node):
    pass


@dataclass(slots=True)
class TemplateNode(Node):
    name: str
    pipe: PipeNode | None


def walk(node: Node | None) -> Iterator[Node]:
    """Every node under ``node`` in document order (pipelines included)."""
    if node is None:
        return
    yield node
    children: list[Node | None] = []
    if isinstance(node, ListNode):
        children = list(node.nodes)
    elif isinstance(node, ActionNode):
        children = [node.pipe]
    elif isinstance(node, PipeNode):
        children = list(node.cmds)
    elif isinstance(node, CommandNode):
        children = list(node.args)
    elif isinstance(node, ChainNode):
        children = [node.node]
    elif isinstance(node, BranchNode):
        children = [node.pipe, node.body, node.else_body]
    elif isinstance(node, TemplateNode):
        children = [node.pipe]
    for child in children:
        yield from walk(child)
