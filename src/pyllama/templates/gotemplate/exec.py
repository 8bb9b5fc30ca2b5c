"""Executes a parsed template against data, following Go's text/template rules.

Data is plain Python (see :mod:`values`). The top-level data is usually a
``dict`` (Go ``map[string]any`` with ``missingkey=zero``): a missing key is
``<no value>`` when printed and false in conditions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pyllama.templates.gotemplate.errors import TemplateExecError
from pyllama.templates.gotemplate.funcs import FuncError
from pyllama.templates.gotemplate.lexer import line_col
from pyllama.templates.gotemplate.nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
)
from pyllama.templates.gotemplate.values import NO_VALUE, GoStruct, OrderedMap, go_sprint, go_type_name, is_true

MAX_DEPTH = 100_000  # Go's maxExecDepth, for runaway {{template}} recursion


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Executor:
    """One rendering: output buffer, variable stack and the functions in scope."""

    def __init__(self, source: str, funcs: Mapping[str, Callable[..., Any]],
                 defines: Mapping[str, ListNode], name: str = "") -> None:
        self.source = source
        self.funcs = funcs
        self.defines = defines
        self.name = name
        self.out: list[str] = []
        self.vars: list[tuple[str, Any]] = []
        self.depth = 0

    # -- errors ---------------------------------------------------------------
    def error(self, node: Node, message: str) -> TemplateExecError:
        line, col = line_col(self.source, node.pos)
        context = self.source[node.pos:node.pos + 40].split("}}")[0].strip(" -{")
        return TemplateExecError(message, line, col, context, self.name)

    # -- variables ------------------------------------------------------------
    def push(self, name: str, value: Any) -> None:
        self.vars.append((name, value))

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return

    def var_value(self, node: Node, name: str) -> Any:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                return self.vars[i][1]
        raise self.error(node, f"undefined variable: {name}")

    # -- walking --------------------------------------------------------------
    def execute(self, root: ListNode, data: Any) -> str:
        self.vars = [("$", data)]
        self.walk(data, root)
        return "".join(self.out)

    def walk(self, dot: Any, node: Node) -> None:
        if isinstance(node, TextNode):
            self.out.append(node.text)
        elif isinstance(node, ActionNode):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.out.append(self.printable(node, value))
        elif isinstance(node, ListNode):
            for child in node.nodes:
                self.walk(dot, child)
        elif isinstance(node, BranchNode):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break()
        elif isinstance(node, ContinueNode):
            raise _Continue()
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)
        else:
            raise self.error(node, f"unknown node: {type(node).__name__}")

    def printable(self, node: Node, value: Any) -> str:
        try:
            return go_sprint(value)
        except ValueError as exc:
            raise self.error(node, str(exc)) from None

    def walk_if_or_with(self, dot: Any, node: BranchNode) -> None:
        mark = len(self.vars)
        value = self.eval_pipeline(dot, node.pipe)
        if is_true(value):
            self.walk(value if node.kind == "with" else dot, node.body)
        elif node.else_body is not None:
            self.walk(dot, node.else_body)
        del self.vars[mark:]

    def walk_range(self, dot: Any, node: BranchNode) -> None:
        mark = len(self.vars)
        value = self.eval_pipeline(dot, node.pipe)
        items: list[tuple[Any, Any]]
        if value is None or value is NO_VALUE:
            items = []
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, dict):
            # Go ranges over maps in key order; Ollama hands templates plain maps
            # even where the API keeps the client's order (arguments, properties).
            items = sorted(value.items(), key=lambda kv: str(kv[0]))
        elif isinstance(value, int) and not isinstance(value, bool):
            if node.pipe.decl and len(node.pipe.decl) > 1:
                raise self.error(node, "can't use two range variables with an integer")
            items = [(i, i) for i in range(value)]
        else:
            raise self.error(node, f"range can't iterate over {go_sprint(value, top=False)}")
        if not items:
            del self.vars[mark:]
            if node.else_body is not None:
                self.walk(dot, node.else_body)
            return
        decl = node.pipe.decl
        base = len(self.vars)
        for key, elem in items:
            del self.vars[base:]
            if len(decl) == 1:
                self._bind(decl[0], elem, node.pipe.is_assign)
            elif len(decl) == 2:
                self._bind(decl[0], key, node.pipe.is_assign)
                self._bind(decl[1], elem, node.pipe.is_assign)
            try:
                self.walk(elem, node.body)
            except _Continue:
                continue
            except _Break:
                break
        del self.vars[mark:]

    def _bind(self, name: str, value: Any, is_assign: bool) -> None:
        if is_assign:
            self.set_var(name, value)
        else:
            self.push(name, value)

    def walk_template(self, dot: Any, node: TemplateNode) -> None:
        body = self.defines.get(node.name)
        if body is None:
            raise self.error(node, f"no such template {node.name!r}")
        new_dot = self.eval_pipeline(dot, node.pipe) if node.pipe is not None else None
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(node, f"exceeded maximum template depth ({MAX_DEPTH})")
        saved, self.vars = self.vars, [("$", new_dot)]
        try:
            self.walk(new_dot, body)
        finally:
            self.vars = saved
            self.depth -= 1

    # -- evaluation -----------------------------------------------------------
    def eval_pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        if value is None:
            value = NO_VALUE  # a nil interface turns into "no value", as in Go
        for name in pipe.decl:  # range rebinds these per element
            self._bind(name, value, pipe.is_assign)
        return value

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            return self.eval_field_chain(dot, dot, first, first.idents, cmd.args, final)
        if isinstance(first, ChainNode):
            receiver = self.eval_arg(dot, first.node)
            return self.eval_field_chain(dot, receiver, first, first.fields, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd.args, final)
        if isinstance(first, PipeNode):
            self._no_args(cmd, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            value = self.var_value(first, first.idents[0])
            if len(first.idents) == 1:
                self._no_args(cmd, final)
                return value
            return self.eval_field_chain(dot, value, first, first.idents[1:], cmd.args, final)
        self._no_args(cmd, final)
        if isinstance(first, NilNode):
            raise self.error(first, "nil is not a command")
        return self.eval_arg(dot, first)

    def _no_args(self, cmd: CommandNode, final: Any) -> None:
        if len(cmd.args) > 1 or final is not _MISSING:
            raise self.error(cmd, f"can't give argument to non-function {self.source[cmd.pos:cmd.pos + 20].split()[0]}")

    def eval_arg(self, dot: Any, node: Node) -> Any:
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, NilNode):
            return None
        if isinstance(node, BoolNode):
            return node.value
        if isinstance(node, NumberNode):
            return node.value
        if isinstance(node, StringNode):
            return node.value
        if isinstance(node, FieldNode):
            return self.eval_field_chain(dot, dot, node, node.idents, [node], _MISSING)
        if isinstance(node, VariableNode):
            value = self.var_value(node, node.idents[0])
            if len(node.idents) == 1:
                return value
            return self.eval_field_chain(dot, value, node, node.idents[1:], [node], _MISSING)
        if isinstance(node, PipeNode):
            return self.eval_pipeline(dot, node)
        if isinstance(node, ChainNode):
            receiver = self.eval_arg(dot, node.node)
            return self.eval_field_chain(dot, receiver, node, node.fields, [node], _MISSING)
        if isinstance(node, IdentifierNode):
            return self.eval_function(dot, node, [node], _MISSING)
        raise self.error(node, f"can't handle {type(node).__name__} as argument")

    def eval_field_chain(self, dot: Any, receiver: Any, node: Node, idents: tuple[str, ...],
                         args: list[Node], final: Any) -> Any:
        for ident in idents[:-1]:
            receiver = self.eval_field(dot, ident, node, [], _MISSING, receiver)
        return self.eval_field(dot, idents[-1], node, args, final, receiver)

    def eval_field(self, dot: Any, name: str, node: Node, args: list[Node], final: Any, receiver: Any) -> Any:
        has_args = len(args) > 1 or final is not _MISSING
        if receiver is NO_VALUE or receiver is None:
            raise self.error(node, f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, GoStruct):
            if name in receiver.go_fields:
                if has_args:
                    raise self.error(node, f"{name} has arguments but cannot be invoked as function")
                return receiver.go_field(name)
            method = getattr(receiver, "go_method_" + name, None)
            if method is not None:
                call_args = [self.eval_arg(dot, a) for a in args[1:]]
                if final is not _MISSING:
                    call_args.append(final)
                try:
                    return method(*call_args)
                except (TypeError, ValueError) as exc:
                    raise self.error(node, f"error calling {name}: {exc}") from None
            raise self.error(node, f"can't evaluate field {name} in type {receiver.go_type}")
        if isinstance(receiver, dict):
            if has_args:
                raise self.error(node, f"{name} is not a method but has arguments")
            if name == "All" and name not in receiver and isinstance(receiver, OrderedMap):
                return receiver  # Ollama's ordered maps expose an All() iterator
            return receiver.get(name, NO_VALUE)
        raise self.error(node, f"can't evaluate field {name} in type {go_type_name(receiver)}")

    def eval_function(self, dot: Any, ident: IdentifierNode, args: list[Node], final: Any) -> Any:
        name = ident.name
        arg_nodes = args[1:]
        if name in ("and", "or"):
            if not arg_nodes and final is _MISSING:
                raise self.error(ident, f"wrong number of args for {name}: want at least 1 got 0")
            result: Any = None
            for a in arg_nodes:
                result = self.eval_arg(dot, a)
                if is_true(result) == (name == "or"):
                    return result
            if final is not _MISSING:
                result = final
            return result
        func = self.funcs.get(name)
        if func is None:
            raise self.error(ident, f"{name!r} is not a defined function")
        call_args = [self.eval_arg(dot, a) for a in arg_nodes]
        if final is not _MISSING:
            call_args.append(final)
        try:
            return func(*call_args)
        except FuncError as exc:
            raise self.error(ident, f"error calling {name}: {exc}") from None
        except TypeError as exc:
            raise self.error(ident, f"wrong number of args for {name}: {exc}") from None


class _Missing:
    """No value piped in from a previous command."""


_MISSING: Any = _Missing()
