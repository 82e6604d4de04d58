"""The parser of the CEL *value* subset that :mod:`app.engine.compiled` turns into Python closures.

A recursive descent over CEL's grammar (conditional, ``||``, ``&&``, one relation, ``+ -``,
``* / %``, unary ``! -``, members, index, calls, list and map literals), producing a small tree
of tuples. Anything outside the subset — macros, ``has()``, conversions (``int(x)``...), bytes,
unsigned or hex literals, string escapes, chained relations, unknown identifiers — raises
:class:`NotSubset`, and the expression is evaluated by CEL alone.

Nodes (``Node`` is a tuple whose first item names it)::

    ("lit", value)                 ("root", name)
    ("member", obj, name)          ("index", obj, key)
    ("list", (items...))           ("map", ((key, value)...))     string keys only
    ("neg", operand)               ("not", operand)
    ("arith", op, left, right)     op in + - * / %
    ("rel", op, left, right)       op in == != < <= > >= in
    ("and", left, right)           ("or", left, right)
    ("cond", test, then, else)
    ("call", name, (args...))      a function of FUNCTIONS, or size
    ("method", name, receiver, (args...))   contains, startsWith, endsWith, size
    ("safe_default", path, fallback)        default(path, x) as rewritten by cel_rewrite

>>> parse("upper(item.title) + '!'")[0]
'arith'
"""

from __future__ import annotations

from typing import Any

from app.pipelines.cel_lexer import KEYWORDS, Token, string_literal_value, tokenize
from app.pipelines.cel_rewrite import _path_guard
from app.pipelines.expressions import FUNCTIONS, ROOTS

Node = tuple[Any, ...]

INT_MIN, INT_MAX = -(2**63), 2**63 - 1

RELATIONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
PURE_FUNCTIONS = frozenset({"lower", "upper", "trim", "join", "default"})
"""The functions of ``FUNCTIONS`` that the compiled path calls (pure, JSON in, JSON out)."""
METHODS = frozenset({"contains", "startsWith", "endsWith", "size"})


class NotSubset(Exception):
    """The expression is outside the compiled subset."""


def _number(text: str, negative: bool = False) -> int | float:
    lowered = text.lower()
    if lowered.startswith("0x") or lowered.endswith("u"):
        raise NotSubset  # hex and unsigned literals stay with CEL
    if "." in text or "e" in lowered:
        value = float(text)
        return -value if negative else value
    number = -int(text) if negative else int(text)
    if not INT_MIN <= number <= INT_MAX:
        raise NotSubset
    return number


class _Parser:
    def __init__(self, source: str, tokens: list[Token]) -> None:
        self.source = source
        self.tokens = tokens
        self.pos = 0

    def peek(self, offset: int = 0) -> Token | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def at(self, text: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token.kind == "punct" and token.text == text

    def take(self, text: str) -> bool:
        if self.at(text):
            self.pos += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.take(text):
            raise NotSubset

    def parse(self) -> Node:
        node = self.expression()
        if self.pos != len(self.tokens):
            raise NotSubset
        return node

    def expression(self) -> Node:
        test = self.disjunction()
        if not self.take("?"):
            return test
        then = self.disjunction()
        self.expect(":")
        return ("cond", test, then, self.expression())

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.take("||"):
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.relation()
        while self.take("&&"):
            node = ("and", node, self.relation())
        return node

    def _relation_op(self) -> str | None:
        token = self.peek()
        if token is None:
            return None
        if token.kind == "punct" and token.text in RELATIONS:
            return token.text
        if token.kind == "keyword" and token.text == "in":
            return "in"
        return None

    def relation(self) -> Node:
        left = self.addition()
        op = self._relation_op()
        if op is None:
            return left
        self.pos += 1
        right = self.addition()
        if self._relation_op() is not None:
            raise NotSubset  # a < b < c
        return ("rel", op, left, right)

    def addition(self) -> Node:
        node = self.multiplication()
        while True:
            token = self.peek()
            if token is None or token.kind != "punct" or token.text not in ("+", "-"):
                return node
            self.pos += 1
            node = ("arith", token.text, node, self.multiplication())

    def multiplication(self) -> Node:
        node = self.unary()
        while True:
            token = self.peek()
            if token is None or token.kind != "punct" or token.text not in ("*", "/", "%"):
                return node
            self.pos += 1
            node = ("arith", token.text, node, self.unary())

    def unary(self) -> Node:
        if self.take("!"):
            return ("not", self.unary())
        if self.take("-"):
            token = self.peek()
            if token is not None and token.kind == "number":
                # A negative literal (-9223372036854775808 included), unless a member follows it.
                if self.at(".", 1) or self.at("[", 1):
                    raise NotSubset
                self.pos += 1
                return ("lit", _number(token.text, negative=True))
            return ("neg", self.unary())
        return self.member(self.primary())

    def arguments(self) -> tuple[list[Node], list[tuple[int, int]]]:
        """The arguments up to the closing parenthesis, and each one's token range."""
        args: list[Node] = []
        spans: list[tuple[int, int]] = []
        if self.take(")"):
            return args, spans
        while True:
            start = self.pos
            args.append(self.expression())
            spans.append((start, self.pos))
            if self.take(")"):
                return args, spans
            self.expect(",")

    def primary(self) -> Node:
        token = self.peek()
        if token is None:
            raise NotSubset
        self.pos += 1
        if token.kind == "punct":
            if token.text == "(":
                node = self.expression()
                self.expect(")")
                return node
            if token.text == "[":
                return ("list", tuple(self.list_items()))
            if token.text == "{":
                return ("map", tuple(self.map_items()))
            raise NotSubset
        if token.kind == "keyword":
            constants = {"true": True, "false": False, "null": None}
            if token.text not in constants:
                raise NotSubset
            return ("lit", constants[token.text])
        if token.kind == "number":
            return ("lit", _number(token.text))
        if token.kind == "string":
            text = string_literal_value(token)
            if text is None:
                raise NotSubset  # escapes, raw and bytes literals stay with CEL
            return ("lit", text)
        if token.kind == "ident":
            if self.take("("):
                return self.call(token.text)
            if token.text in ROOTS:
                return ("root", token.text)
        raise NotSubset

    def call(self, name: str) -> Node:
        first = self.pos
        args, spans = self.arguments()
        if name == "size":
            if len(args) != 1:
                raise NotSubset
            return ("call", "size", tuple(args))
        if name not in PURE_FUNCTIONS or name not in FUNCTIONS:
            raise NotSubset
        if name == "default" and len(args) == 2:
            start, end = spans[0]
            # Exactly the decision of cel_rewrite.rewrite_defaults: a path gets the guarded form.
            if (
                start == first
                and self.tokens[start].text not in KEYWORDS
                and _path_guard(self.source, self.tokens, start, end) is not None
            ):
                if not _is_path(args[0]):
                    raise NotSubset
                return ("safe_default", args[0], args[1])
        return ("call", name, tuple(args))

    def list_items(self) -> list[Node]:
        items: list[Node] = []
        while not self.take("]"):
            items.append(self.expression())
            if not self.take(","):
                self.expect("]")
                break
        return items

    def map_items(self) -> list[tuple[str, Node]]:
        entries: list[tuple[str, Node]] = []
        seen: set[str] = set()
        while not self.take("}"):
            token = self.peek()
            key = string_literal_value(token) if token is not None else None
            if key is None or key in seen:
                raise NotSubset  # computed, non-string or repeated keys stay with CEL
            seen.add(key)
            self.pos += 1
            self.expect(":")
            entries.append((key, self.expression()))
            if not self.take(","):
                self.expect("}")
                break
        return entries

    def member(self, node: Node) -> Node:
        while True:
            if self.at("."):
                name = self.peek(1)
                if name is None or name.kind not in ("ident", "keyword"):
                    raise NotSubset
                self.pos += 2
                if self.take("("):
                    if name.text not in METHODS:
                        raise NotSubset  # macros (map, filter, all, exists...) and other methods
                    args, _ = self.arguments()
                    if len(args) != (0 if name.text == "size" else 1):
                        raise NotSubset
                    node = ("method", name.text, node, tuple(args))
                else:
                    node = ("member", node, name.text)
            elif self.at("["):
                self.pos += 1
                key = self.expression()
                self.expect("]")
                node = ("index", node, key)
            else:
                return node


def _is_path(node: Node) -> bool:
    while node[0] in ("member", "index"):
        node = node[1]
    return bool(node[0] == "root")


def parse(source: str) -> Node:
    """The tree of ``source``; raises :class:`NotSubset` when it is outside the subset."""
    tokens = tokenize(source)
    if not tokens or any(token.kind == "error" for token in tokens):
        raise NotSubset
    try:
        return _Parser(source, tokens).parse()
    except (ValueError, IndexError):
        raise NotSubset from None


def children(node: Node) -> list[Node]:
    """The sub-expressions of a node."""
    head = node[0]
    if head in ("lit", "root"):
        return []
    if head == "member":
        return [node[1]]
    if head == "list":
        return list(node[1])
    if head == "map":
        return [value for _, value in node[1]]
    if head == "call":
        return list(node[2])
    if head == "method":
        return [node[2], *node[3]]
    if head in ("arith", "rel"):
        return [node[2], node[3]]
    return list(node[1:])  # index, neg, not, and, or, cond, safe_default


def roots(node: Node) -> set[str]:
    """The variables a tree reads."""
    if node[0] == "root":
        return {node[1]}
    found: set[str] = set()
    for child in children(node):
        found |= roots(child)
    return found
