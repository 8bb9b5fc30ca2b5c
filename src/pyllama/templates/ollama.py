"""Ollama's rules on top of the Go template engine.

What Ollama's ``template`` package adds to plain ``text/template``: its
functions (``json``, ``currentDate``, ...), the ``{{ .Response }}`` appended
to templates that mention neither ``.Messages`` nor ``.Response``, the
variables a template uses (which decide between the ``.Messages`` path and
the per-turn ``.System/.Prompt/.Response`` path), the consecutive-message
merge, and the tag inference used to parse thinking and tool calls.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pyllama.templates.gotemplate import Template, TemplateSyntaxError
from pyllama.templates.gotemplate.nodes import (
    ActionNode,
    BranchNode,
    CommandNode,
    FieldNode,
    ListNode,
    Node,
    PipeNode,
    TemplateNode,
    TextNode,
    VariableNode,
)
from pyllama.templates.gotemplate.values import json_marshal
from pyllama.templates.gotypes import Message, Tool, Tools, ToolProperty

DEFAULT_TEMPLATE = "{{ .Prompt }}"


def _json(value: Any) -> str:
    """Ollama's ``json``: marshal errors give an empty string, never a failure."""
    try:
        return json_marshal(value)
    except ValueError:
        return ""


def _current_date(*_: Any) -> str:
    return datetime.date.today().isoformat()


def _yesterday_date(*_: Any) -> str:
    return (datetime.date.today() - datetime.timedelta(days=1)).isoformat()


def _to_typescript(value: Any) -> str:
    return value.to_typescript() if isinstance(value, ToolProperty) else "any"


OLLAMA_FUNCS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "currentDate": _current_date,
    "yesterdayDate": _yesterday_date,
    "toTypeScriptType": _to_typescript,
}


def _identifiers(node: Node | None) -> list[str]:
    """Field and variable names a node uses (Ollama's ``Identifiers`` walk)."""
    if node is None:
        return []
    if isinstance(node, ListNode):
        return [name for child in node.nodes for name in _identifiers(child)]
    if isinstance(node, ActionNode):
        return _identifiers(node.pipe)
    if isinstance(node, TemplateNode):
        return _identifiers(node.pipe)
    if isinstance(node, BranchNode):
        return _identifiers(node.pipe) + _identifiers(node.body) + _identifiers(node.else_body)
    if isinstance(node, PipeNode):
        return [name for cmd in node.cmds for arg in cmd.args for name in _identifiers(arg)]
    if isinstance(node, (FieldNode, VariableNode)):
        return list(node.idents)
    return []


class OllamaTemplate:
    """A TEMPLATE layer, parsed once; render with :meth:`execute`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.template = Template(text, OLLAMA_FUNCS)
        names: set[str] = set()
        for tree in [self.template.root, *self.template.defines.values()]:
            names.update(name.lower() for name in _identifiers(tree))
        self.vars = frozenset(names)
        if "messages" not in self.vars and "response" not in self.vars:
            appended = ActionNode(len(text), PipeNode(len(text), [], False, [
                CommandNode(len(text), [FieldNode(len(text), ("Response",))])]))
            self.template.root = ListNode(0, [*self.template.root.nodes, appended])
        self._cut_root = _cut_after_response(self.template.root)

    @property
    def uses_messages(self) -> bool:
        return "messages" in self.vars

    def execute(self, messages: Sequence[Message], *, tools: Sequence[Tool] = (), prompt: str = "",
                suffix: str = "", think: bool = False, think_level: str = "", is_think_set: bool = False) -> str:
        """Render like Ollama's ``Template.Execute``."""
        system, collated = collate(messages)
        think_vars = {"Think": think, "ThinkLevel": think_level, "IsThinkSet": is_think_set}
        if prompt and suffix:
            return self.template.render({"Prompt": prompt, "Suffix": suffix, "Response": "", **think_vars})
        if self.uses_messages:
            tool_list = tools if isinstance(tools, Tools) else Tools(tools)
            return self.template.render({"System": system, "Messages": collated, "Tools": tool_list,
                                         "Response": "", **think_vars})
        out: list[str] = []
        turn = {"System": "", "Prompt": "", "Response": ""}

        def flush() -> None:
            out.append(self.template.render({**turn, **think_vars}))
            turn.update(System="", Prompt="", Response="")

        for msg in collated:
            if msg.Role == "system":
                if turn["Prompt"] or turn["Response"]:
                    flush()
                turn["System"] = msg.Content
            elif msg.Role == "user":
                if turn["Response"]:
                    flush()
                turn["Prompt"] = msg.Content
            elif msg.Role == "assistant":
                turn["Response"] = msg.Content
        out.append(self.template.render({**turn, **think_vars}, root=self._cut_root))
        return "".join(out)

    def thinking_tags(self) -> tuple[str, str]:
        """Opening and closing thinking tags, as Ollama's ``thinking.InferTags``."""
        return infer_thinking_tags(self.template.root)

    def tool_call_tag(self) -> str:
        """Text that starts a tool call in model output, as Ollama's ``tools`` package infers it."""
        return infer_tool_tag(self.template.root)


@functools.lru_cache(maxsize=64)
def parse_ollama_template(text: str) -> OllamaTemplate:
    """Parse (and cache) a TEMPLATE layer; raises ``TemplateSyntaxError``."""
    return OllamaTemplate(text)


def check_template(text: str) -> None:
    """Raise ValueError unless ``text`` parses as a TEMPLATE, worded as Go's parser
    words it (``template: :LINE: message``, no column).

    /api/create passes this to the store, so a broken TEMPLATE is a 400 at
    create time rather than a failure at the first chat request.
    """
    try:
        parse_ollama_template(text)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template: {exc.name}:{exc.line}: {exc.detail}") from None


def collate(messages: Sequence[Message]) -> tuple[str, list[Message]]:
    """All system contents joined, and messages with same-role runs merged (tool messages kept apart)."""
    system: list[str] = []
    out: list[Message] = []
    for msg in messages:
        if msg.Role == "system":
            system.append(msg.Content)
        if out and out[-1].Role == msg.Role and msg.Role != "tool":
            merged = _copy(out[-1])
            merged.Content += "\n\n" + msg.Content
            out[-1] = merged
        else:
            out.append(msg)
    return "\n\n".join(system), out


def _copy(msg: Message) -> Message:
    clone = Message.__new__(Message)
    for name in Message.go_fields:
        setattr(clone, name, getattr(msg, name))
    return clone


# -- the open turn: drop everything after {{ .Response }} --------------------
def _cut_after_response(root: ListNode) -> ListNode:
    """Copy of ``root`` that ends at the first ``.Response`` field (Ollama's deleteNode walk)."""
    cut = False

    def drop(node: Node) -> bool:
        nonlocal cut
        if isinstance(node, FieldNode) and "Response" in node.idents:
            cut = True
            return False
        return cut

    def walk(node: Node) -> Node | None:
        if drop(node):
            return None
        if isinstance(node, ListNode):
            kept = [w for w in (walk(c) for c in node.nodes) if w is not None]
            return ListNode(node.pos, kept)
        if isinstance(node, BranchNode):
            body = walk(node.body)
            else_body = walk(node.else_body) if node.else_body is not None else None
            assert isinstance(body, ListNode) or body is None
            return BranchNode(node.pos, node.kind, node.pipe, body or ListNode(node.pos),
                              else_body if isinstance(else_body, ListNode) else None)
        if isinstance(node, ActionNode):
            pipe = walk(node.pipe)
            return ActionNode(node.pos, pipe) if isinstance(pipe, PipeNode) else None
        if isinstance(node, PipeNode):
            cmds: list[CommandNode] = []
            for cmd in node.cmds:
                args = [w for w in (walk(a) for a in cmd.args) if w is not None]
                if not args:
                    return None
                cmds.append(CommandNode(cmd.pos, args))
            return PipeNode(node.pos, node.decl, node.is_assign, cmds) if cmds else None
        return node

    result = walk(root)
    return result if isinstance(result, ListNode) else ListNode(0)


# -- thinking tags ------------------------------------------------------------
def _children(node: Node) -> list[Node]:
    if isinstance(node, ListNode):
        return list(node.nodes)
    if isinstance(node, BranchNode):
        return [n for n in (node.pipe, node.body, node.else_body) if n is not None]
    if isinstance(node, (ActionNode, TemplateNode)):
        return [node.pipe] if node.pipe is not None else []
    if isinstance(node, PipeNode):
        return list(node.cmds)
    if isinstance(node, CommandNode):
        return list(node.args)
    return []


def _range_uses(node: BranchNode, field: str) -> bool:
    stack: list[Node] = [node.pipe]
    while stack:
        cur = stack.pop()
        if isinstance(cur, FieldNode) and cur.idents[0] == field:
            return True
        stack.extend(_children(cur))
    return False


def infer_thinking_tags(root: ListNode) -> tuple[str, str]:
    """Tags around ``.Thinking`` inside a ``range .Messages``: first and last text of its list.

    Later matches overwrite earlier ones, as in Ollama's walk.
    """
    tags = ["", ""]

    def visit(node: Node, ancestors: list[Node]) -> None:
        path = [*ancestors, node]
        if isinstance(node, FieldNode) and node.idents[0] == "Thinking":
            ranges = [a for a in path if isinstance(a, BranchNode) and a.kind == "range"]
            if ranges and _range_uses(ranges[-1], "Messages"):
                lists = [a for a in path if isinstance(a, ListNode)]
                if lists and lists[-1].nodes:
                    nearest = lists[-1]
                    first, last = nearest.nodes[0], nearest.nodes[-1]
                    if isinstance(first, TextNode):
                        tags[0] = first.text.strip()
                    if isinstance(last, TextNode):
                        tags[1] = last.text.strip()
        for child in _children(node):
            visit(child, path)

    visit(root, [])
    return tags[0], tags[1]


# -- tool-call tag ------------------------------------------------------------
def _if_uses_tool_calls(node: BranchNode) -> bool:
    return any(isinstance(arg, FieldNode) and "ToolCalls" in arg.idents
               for cmd in node.pipe.cmds for arg in cmd.args)


def _find_tool_calls_if(nodes: Sequence[Node]) -> BranchNode | None:
    for node in nodes:
        if isinstance(node, BranchNode):
            if node.kind == "if" and _if_uses_tool_calls(node):
                return node
            for body in (node.body, node.else_body):
                if body is not None:
                    found = _find_tool_calls_if(body.nodes)
                    if found is not None:
                        return found
        elif isinstance(node, ListNode):
            found = _find_tool_calls_if(node.nodes)
            if found is not None:
                return found
    return None


def _first_text(nodes: Sequence[Node]) -> TextNode | None:
    for node in nodes:
        if isinstance(node, TextNode):
            return node
        if isinstance(node, BranchNode):
            for body in (node.body, node.else_body):
                if body is not None:
                    found = _first_text(body.nodes)
                    if found is not None:
                        return found
            return None
        if isinstance(node, ListNode):
            found = _first_text(node.nodes)
            if found is not None:
                return found
        if isinstance(node, ActionNode):
            return None
    return None


def infer_tool_tag(root: ListNode) -> str:
    """First text inside ``{{ if .ToolCalls }}``, cut before ``{``; ``{`` when there is none."""
    branch = _find_tool_calls_if(root.nodes)
    if branch is None:
        return "{"
    text = _first_text(branch.body.nodes)
    if text is None:
        return "{"
    tag = text.text.replace("\r\n", "\n").split("{", 1)[0].strip()
    return tag or "{"


@dataclass(frozen=True)
class TemplateInfo:
    """What the prompt builder and parsers need to know about a TEMPLATE."""

    uses_tools: bool
    uses_suffix: bool
    thinking_tags: tuple[str, str]
    tool_tag: str


def template_info(text: str) -> TemplateInfo:
    tmpl = parse_ollama_template(text)
    return TemplateInfo("tools" in tmpl.vars, "suffix" in tmpl.vars, tmpl.thinking_tags(), tmpl.tool_call_tag())

