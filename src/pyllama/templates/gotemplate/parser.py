"""Recursive-descent parser: tokens -> syntax tree, with Go's parse-time checks.

Like Go, it rejects unknown functions and undefined variables while parsing,
so a broken TEMPLATE layer fails when it is stored, not at the first chat.
"""

from __future__ import annotations

from collections.abc import Container

from pyllama.templates.gotemplate.errors import TemplateSyntaxError
from pyllama.templates.gotemplate.lexer import Tok, Token, line_col, tokenize
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


class _Else(Node):
    """Marker returned by ``{{else}}``; ``chained`` is "if"/"with" for else-if forms."""

    __slots__ = ("chained",)

    def __init__(self, pos: int, chained: str) -> None:
        super().__init__(pos)
        self.chained = chained


class _End(Node):
    __slots__ = ()


def parse_number(text: str) -> int | float:
    """Value of a Go number literal (ints stay ints, like Go's ideal constants)."""
    clean = text.replace("_", "")
    if clean.endswith("i"):
        raise ValueError("complex constants are not supported")
    sign = -1 if clean.startswith("-") else 1
    body = clean.lstrip("+-")
    lower = body.lower()
    if lower.startswith("0x"):
        if "." in lower or "p" in lower:
            return sign * float.fromhex(body)
        return sign * int(body, 16)
    if lower.startswith("0b"):
        return sign * int(body[2:], 2)
    if lower.startswith("0o"):
        return sign * int(body[2:], 8)
    if any(c in lower for c in ".e"):
        return float(body) * sign
    if len(body) > 1 and body.startswith("0"):
        return sign * int(body, 8)
    return sign * int(body)


class Parser:
    """Parses one template source; ``funcs`` are the function names in scope."""

    def __init__(self, source: str, funcs: Container[str], name: str = "") -> None:
        self.source = source
        self.funcs = funcs
        self.name = name
        self.tokens = tokenize(source)
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.defines: dict[str, ListNode] = {}

    # -- token helpers ------------------------------------------------------
    def error(self, message: str, pos: int | None = None) -> TemplateSyntaxError:
        if pos is None:
            pos = self.tokens[self.i].pos if self.i < len(self.tokens) else len(self.source)
        line, col = line_col(self.source, pos)
        return TemplateSyntaxError(message, line, col, self.name)

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected EOF")
        self.i += 1
        return tok

    def expect(self, kind: Tok, context: str) -> Token:
        tok = self.next()
        if tok.kind is not kind:
            raise self.error(f"unexpected {tok.value!r} in {context}", tok.pos)
        return tok

    # -- structure ----------------------------------------------------------
    def parse(self) -> ListNode:
        root = ListNode(0)
        while self.peek() is not None:
            node = self.text_or_action()
            if isinstance(node, (_Else, _End)):
                raise self.error(f"unexpected {{{{{'else' if isinstance(node, _Else) else 'end'}}}}}", node.pos)
            if node is not None:
                root.nodes.append(node)
        return root

    def item_list(self, context: str) -> tuple[ListNode, Node]:
        """Nodes up to the ``{{else}}``/``{{end}}`` that closes ``context``."""
        start = self.tokens[self.i - 1].pos if self.i else 0
        body = ListNode(start)
        while True:
            if self.peek() is None:
                raise self.error(f"unexpected EOF in {context}")
            node = self.text_or_action()
            if isinstance(node, (_Else, _End)):
                return body, node
            if node is not None:
                body.nodes.append(node)

    def text_or_action(self) -> Node | None:
        tok = self.next()
        if tok.kind is Tok.TEXT:
            return TextNode(tok.pos, tok.value)
        if tok.kind is Tok.LEFT:
            return self.action(tok)
        raise self.error(f"unexpected {tok.value!r}", tok.pos)

    def action(self, left: Token) -> Node | None:
        tok = self.peek()
        if tok is not None and tok.kind is Tok.KEYWORD:
            self.next()
            word = tok.value
            if word == "end":
                self.expect(Tok.RIGHT, "end")
                return _End(tok.pos)
            if word == "else":
                return self.else_control(tok)
            if word in ("if", "range", "with"):
                return self.control(word, tok)
            if word in ("break", "continue"):
                if self.range_depth == 0:
                    raise self.error(f"{{{{{word}}}}} outside {{{{range}}}}", tok.pos)
                self.expect(Tok.RIGHT, word)
                return BreakNode(tok.pos) if word == "break" else ContinueNode(tok.pos)
            if word == "template":
                return self.template_control(tok)
            if word == "define":
                self.define_control(tok)
                return None
            if word == "block":
                return self.block_control(tok)
        pipe = self.pipeline("command", Tok.RIGHT)
        return ActionNode(left.pos, pipe)

    def else_control(self, tok: Token) -> _Else:
        nxt = self.peek()
        if nxt is not None and nxt.kind is Tok.KEYWORD and nxt.value in ("if", "with"):
            return _Else(tok.pos, nxt.value)
        self.expect(Tok.RIGHT, "else")
        return _Else(tok.pos, "")

    def control(self, kind: str, tok: Token) -> BranchNode:
        mark = len(self.vars)
        if kind == "range":
            self.range_depth += 1
        pipe = self.pipeline(kind, Tok.RIGHT)
        body, stop = self.item_list(kind)
        else_body: ListNode | None = None
        if isinstance(stop, _Else):
            if stop.chained:
                if stop.chained != kind:
                    raise self.error(f"unexpected else {stop.chained} in {kind}", stop.pos)
                chained_tok = self.next()  # the "if"/"with" keyword, shares our {{end}}
                else_body = ListNode(stop.pos, [self.control(kind, chained_tok)])
            else:
                if kind == "range":
                    self.range_depth -= 1
                else_body, stop = self.item_list(kind)
                if kind == "range":
                    self.range_depth += 1
                if not isinstance(stop, _End):
                    raise self.error("expected end; found {{else}}", stop.pos)
        if kind == "range":
            self.range_depth -= 1
        del self.vars[mark:]
        return BranchNode(tok.pos, kind, pipe, body, else_body)

    def template_control(self, tok: Token) -> TemplateNode:
        name_tok = self.next()
        if name_tok.kind is not Tok.STRING:
            raise self.error("template name must be a string constant", name_tok.pos)
        pipe: PipeNode | None = None
        if self.peek() is not None and self.peek().kind is not Tok.RIGHT:  # type: ignore[union-attr]
            pipe = self.pipeline("template clause", Tok.RIGHT)
        else:
            self.expect(Tok.RIGHT, "template clause")
        return TemplateNode(tok.pos, name_tok.value, pipe)

    def define_control(self, tok: Token) -> None:
        name = self.next()
        if name.kind is not Tok.STRING:
            raise self.error("define name must be a string constant", name.pos)
        self.expect(Tok.RIGHT, "define clause")
        self.defines[name.value] = self.named_body("define")

    def block_control(self, tok: Token) -> TemplateNode:
        name = self.next()
        if name.kind is not Tok.STRING:
            raise self.error("block name must be a string constant", name.pos)
        pipe = self.pipeline("block clause", Tok.RIGHT)
        self.defines[name.value] = self.named_body("block")
        return TemplateNode(tok.pos, name.value, pipe)

    def named_body(self, context: str) -> ListNode:
        """Body of a ``define``/``block``: its own variable scope, closed by ``{{end}}``."""
        saved_vars, self.vars = self.vars, ["$"]
        body, stop = self.item_list(context)
        self.vars = saved_vars
        if not isinstance(stop, _End):
            raise self.error(f"unexpected {{{{else}}}} in {context}", stop.pos)
        return body

    # -- pipelines ----------------------------------------------------------
    def pipeline(self, context: str, end: Tok) -> PipeNode:
        start = self.peek()
        pos = start.pos if start is not None else len(self.source)
        decl: list[str] = []
        is_assign = False
        # Declarations: $x := / $x = / $i, $v :=
        j = self.i
        if self._tok_is(j, Tok.VARIABLE):
            if self._tok_is(j + 1, Tok.DECLARE) or self._tok_is(j + 1, Tok.ASSIGN):
                decl = [self.tokens[j].value]
                is_assign = self.tokens[j + 1].kind is Tok.ASSIGN
                self.i = j + 2
            elif self._tok_is(j + 1, Tok.COMMA) and self._tok_is(j + 2, Tok.VARIABLE) and (
                self._tok_is(j + 3, Tok.DECLARE) or self._tok_is(j + 3, Tok.ASSIGN)
            ):
                if context != "range":
                    raise self.error(f"too many declarations in {context}", self.tokens[j + 1].pos)
                decl = [self.tokens[j].value, self.tokens[j + 2].value]
                is_assign = self.tokens[j + 3].kind is Tok.ASSIGN
                self.i = j + 4
        for var in decl:
            if is_assign:
                if var not in self.vars:
                    raise self.error(f"undefined variable {var!r}", pos)
            else:
                self.vars.append(var)
        cmds: list[CommandNode] = []
        while True:
            tok = self.peek()
            if tok is None:
                raise self.error(f"unclosed action in {context}")
            if tok.kind is end:
                self.next()
                break
            cmds.append(self.command(end))
            tok = self.peek()
            if tok is not None and tok.kind is Tok.PIPE:
                self.next()
                if self.peek() is not None and self.peek().kind is end:  # type: ignore[union-attr]
                    raise self.error("missing command after |", tok.pos)
        if not cmds:
            raise self.error(f"missing value for {context}", pos)
        for cmd in cmds[1:]:
            first = cmd.args[0]
            if isinstance(first, (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                raise self.error(f"non executable command in pipeline stage {cmds.index(cmd) + 1}", cmd.pos)
        return PipeNode(pos, decl, is_assign, cmds)

    def _tok_is(self, j: int, kind: Tok) -> bool:
        return j < len(self.tokens) and self.tokens[j].kind is kind

    def command(self, end: Tok) -> CommandNode:
        first = self.peek()
        assert first is not None
        cmd = CommandNode(first.pos, [])
        while True:
            tok = self.peek()
            if tok is None or tok.kind in (end, Tok.PIPE, Tok.RIGHT, Tok.RPAREN):
                if tok is not None and tok.kind in (Tok.RIGHT, Tok.RPAREN) and tok.kind is not end:
                    raise self.error(f"unexpected {tok.value!r} in operand", tok.pos)
                break
            if cmd.args and not tok.space_before:
                raise self.error(f"missing space before {tok.value!r}", tok.pos)
            cmd.args.append(self.operand())
        if not cmd.args:
            raise self.error("empty command", first.pos)
        return cmd

    def operand(self) -> Node:
        node = self.term()
        fields: list[str] = []
        while True:
            tok = self.peek()
            if tok is None or tok.kind is not Tok.FIELD or tok.space_before:
                break
            self.next()
            fields.append(tok.value)
        if not fields:
            return node
        if isinstance(node, FieldNode):
            return FieldNode(node.pos, node.idents + tuple(fields))
        if isinstance(node, VariableNode):
            return VariableNode(node.pos, node.idents + tuple(fields))
        if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
            raise self.error(f"unexpected . after term {self.source[node.pos:node.pos + 10]!r}", node.pos)
        return ChainNode(node.pos, node, tuple(fields))

    def term(self) -> Node:
        tok = self.next()
        kind = tok.kind
        if kind is Tok.FIELD:
            return FieldNode(tok.pos, (tok.value,))
        if kind is Tok.VARIABLE:
            if tok.value not in self.vars:
                raise self.error(f"undefined variable {tok.value!r}", tok.pos)
            return VariableNode(tok.pos, (tok.value,))
        if kind is Tok.IDENT:
            if tok.value not in self.funcs:
                raise self.error(f"function {tok.value!r} not defined", tok.pos)
            return IdentifierNode(tok.pos, tok.value)
        if kind is Tok.DOT:
            return DotNode(tok.pos)
        if kind is Tok.NIL:
            return NilNode(tok.pos)
        if kind is Tok.BOOL:
            return BoolNode(tok.pos, tok.value == "true")
        if kind is Tok.STRING:
            return StringNode(tok.pos, tok.value)
        if kind is Tok.CHAR:
            return NumberNode(tok.pos, ord(tok.value), repr(tok.value))
        if kind is Tok.NUMBER:
            try:
                return NumberNode(tok.pos, parse_number(tok.value), tok.value)
            except ValueError as exc:
                raise self.error(f"bad number syntax: {tok.value!r} ({exc})", tok.pos) from None
        if kind is Tok.LPAREN:
            pipe = self.pipeline("parenthesized pipeline", Tok.RPAREN)
            return pipe
        raise self.error(f"unexpected {tok.value!r} in operand", tok.pos)


def parse(source: str, funcs: Container[str], name: str = "") -> tuple[ListNode, dict[str, ListNode]]:
    """Parse ``source``; returns the root list and the ``define``d templates."""
    parser = Parser(source, funcs, name)
    root = parser.parse()
    return root, parser.defines
