"""Simple predicates evaluated in Python, with CEL as the judge of every case they do not settle.

Most ``where`` and ``if`` expressions are comparisons of member paths and literals joined by
``&&``, ``||`` and ``!``: ``item.score >= inputs.min && item.kind != "spam"``. Handing an item to
CEL costs microseconds per key read; this module compiles that subset into Python closures
(about 1 µs per item) that give exactly CEL's answer for the plain cases:

* a path reads dict keys that exist; numbers (int within 64 bits, float but NaN only for
  ``==``/``!=``; not booleans) compare with numbers, strings with strings (code points),
  booleans with booleans, null equals null;
  ``==`` between different kinds of scalars is false (``true == 1`` is false in CEL too);
* ``s.contains(t)``, ``s.startsWith(t)``, ``s.endsWith(t)`` take two strings;
* ``a && b`` / ``a || b`` / ``!a`` take booleans; ``false && x`` is false and ``true || x`` is true
  whatever ``x`` is (CEL's logical operators absorb errors the same way).

Anything else for a given item — a missing key, a null in a path, an ordering across kinds, a list
or map operand, a non-boolean in a logical operator — raises :class:`Fallback`, and the caller
evaluates that item with CEL, so results and error messages are always CEL's own.

>>> fn = compile_predicate('item.score >= 250 && item.kind != "spam"', {})
>>> fn({"score": 300, "kind": "story"}, 0), fn({"score": 10, "kind": "story"}, 1)
(True, False)
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from app.pipelines.cel_lexer import Token, string_literal_value, tokenize
from app.pipelines.expressions import ROOTS

Fn = Callable[[Any, int], Any]

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_RELATIONS = frozenset({"==", "!=", *_ORDER})


class Fallback(Exception):
    """This item is not a plain case: evaluate it with CEL."""


_FALLBACK = Fallback()


class _NotSubset(Exception):
    """The expression is outside the compiled subset."""


def _kind(value: Any) -> str:
    """n(umber), s(tring), b(oolean), z (null); raises Fallback for anything else."""
    kind = type(value)
    if kind is int:
        if _INT_MIN <= value <= _INT_MAX:
            return "n"
        raise _FALLBACK
    if kind is float:
        return "n"
    if kind is str:
        return "s"
    if kind is bool:
        return "b"
    if value is None:
        return "z"
    raise _FALLBACK


def _equal(a: Any, b: Any) -> bool:
    kind = _kind(a)
    if kind != _kind(b):
        return False
    if kind == "n" and type(a) is not type(b):
        return float(a) == float(b)  # CEL compares an int with a double as doubles
    return bool(a == b)


def _path(root: str, keys: tuple[str, ...], variables: Mapping[str, Any]) -> Fn:
    if root == "index":
        if keys:
            raise _NotSubset
        return lambda item, index: index
    if root != "item":
        # Run-wide values do not change per item: read them once (a failed read stays CEL's case).
        value: Any = variables.get(root, _FALLBACK)
        for key in keys:
            value = value[key] if type(value) is dict and key in value else _FALLBACK
        if value is _FALLBACK:

            def unreadable(item: Any, index: int) -> Any:
                raise _FALLBACK

            return unreadable
        return lambda item, index: value
    if not keys:
        return lambda item, index: item
    if len(keys) == 1:
        (key,) = keys

        def read_one(item: Any, index: int) -> Any:
            if type(item) is dict and key in item:
                return item[key]
            raise _FALLBACK

        return read_one

    def read(item: Any, index: int) -> Any:
        value = item
        for key in keys:
            if type(value) is dict and key in value:
                value = value[key]
            else:
                raise _FALLBACK
        return value

    return read


class _Parser:
    """Recursive descent over the subset: or, and, unary ``!``, one relation, primaries."""

    def __init__(self, tokens: list[Token], variables: Mapping[str, Any]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.variables = variables

    def peek(self, offset: int = 0) -> Token | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, text: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == text:
            self.pos += 1
            return True
        return False

    def parse(self) -> Fn:
        fn = self.disjunction()
        if self.pos != len(self.tokens):
            raise _NotSubset
        return fn

    def disjunction(self) -> Fn:
        fn = self.conjunction()
        while self.take("||"):
            fn = _or(fn, self.conjunction())
        return fn

    def conjunction(self) -> Fn:
        fn = self.relation()
        while self.take("&&"):
            fn = _and(fn, self.relation())
        return fn

    def relation(self) -> Fn:
        left = self.unary()
        token = self.peek()
        if token is None or token.kind != "punct" or token.text not in _RELATIONS:
            return left
        self.pos += 1
        right = self.unary()
        after = self.peek()
        if after is not None and after.kind == "punct" and after.text in _RELATIONS:
            raise _NotSubset  # a < b < c
        return _relation(token.text, left, right)

    def unary(self) -> Fn:
        if self.take("!"):
            return _not(self.unary())
        if self.take("-"):
            token = self.peek()
            if token is None or token.kind != "number":
                raise _NotSubset
            self.pos += 1
            value = -_number(token.text)
            return lambda item, index: value
        return self.primary()

    def primary(self) -> Fn:
        token = self.peek()
        if token is None:
            raise _NotSubset
        if self.take("("):
            fn = self.disjunction()
            if not self.take(")"):
                raise _NotSubset
            return fn
        self.pos += 1
        if token.kind == "keyword" and token.text in ("true", "false", "null"):
            constant = {"true": True, "false": False, "null": None}[token.text]
            return lambda item, index: constant
        if token.kind == "number":
            number = _number(token.text)
            return lambda item, index: number
        if token.kind == "string":
            text = string_literal_value(token)
            if text is None:
                raise _NotSubset
            return self.methods(lambda item, index: text)
        if token.kind == "ident" and token.text in ROOTS:
            return self.methods(_path(token.text, self.members(), self.variables))
        raise _NotSubset

    def methods(self, receiver: Fn) -> Fn:
        """``.contains(x)``, ``.startsWith(x)``, ``.endsWith(x)`` after a path or a string."""
        while True:
            token, name, opening = self.peek(), self.peek(1), self.peek(2)
            if token is None or token.text != "." or name is None or opening is None or opening.text != "(":
                return receiver
            if name.text not in _METHODS:
                raise _NotSubset
            self.pos += 3
            argument = self.disjunction()
            if not self.take(")"):
                raise _NotSubset
            receiver = _method(_METHODS[name.text], receiver, argument)

    def members(self) -> tuple[str, ...]:
        keys: list[str] = []
        while True:
            token, following = self.peek(), self.peek(1)
            if token is None or token.kind != "punct":
                return tuple(keys)
            if token.text == "." and following is not None and following.kind in ("ident", "keyword"):
                after = self.peek(2)
                if after is not None and after.text == "(":
                    return tuple(keys)  # a method call: see methods()
                keys.append(following.text)
                self.pos += 2
            elif token.text == "[" and following is not None:
                closing = self.peek(2)
                literal = string_literal_value(following)
                if literal is None or closing is None or closing.text != "]":
                    raise _NotSubset
                keys.append(literal)
                self.pos += 3
            else:
                return tuple(keys)


def _number(text: str) -> int | float:
    lowered = text.lower()
    if lowered.startswith("0x") or lowered.endswith("u"):
        raise _NotSubset  # hex and unsigned literals stay with CEL
    if "." in text or "e" in lowered:
        return float(text)
    value = int(text)
    if value > _INT_MAX:
        raise _NotSubset
    return value


def _boolean(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise _FALLBACK


def _and(left: Fn, right: Fn) -> Fn:
    def both(item: Any, index: int) -> bool:
        if not _boolean(left(item, index)):
            return False
        return _boolean(right(item, index))

    return both


def _or(left: Fn, right: Fn) -> Fn:
    def either(item: Any, index: int) -> bool:
        if _boolean(left(item, index)):
            return True
        return _boolean(right(item, index))

    return either


def _not(operand: Fn) -> Fn:
    return lambda item, index: not _boolean(operand(item, index))


_METHODS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda text, part: part in text,
    "startsWith": str.startswith,
    "endsWith": str.endswith,
}


def _method(method: Callable[[str, str], bool], receiver: Fn, argument: Fn) -> Fn:
    def call(item: Any, index: int) -> bool:
        text, part = receiver(item, index), argument(item, index)
        if type(text) is str and type(part) is str:
            return method(text, part)
        raise _FALLBACK

    return call


def _relation(op: str, left: Fn, right: Fn) -> Fn:
    if op == "==":
        return lambda item, index: _equal(left(item, index), right(item, index))
    if op == "!=":
        return lambda item, index: not _equal(left(item, index), right(item, index))
    compare = _ORDER[op]

    def ordered(item: Any, index: int) -> bool:
        a, b = left(item, index), right(item, index)
        kind = _kind(a)
        if kind == "z" or kind != _kind(b) or a != a or b != b:  # CEL refuses to order NaN
            raise _FALLBACK
        if kind == "n" and type(a) is not type(b):
            return bool(compare(float(a), float(b)))  # an int against a double: as doubles
        return bool(compare(a, b))

    return ordered


def compile_predicate(source: str, variables: Mapping[str, Any]) -> Fn | None:
    """``fn(item, index)`` for an expression of the subset (raising :class:`Fallback` on cases it
    does not settle), or None when the expression is outside the subset."""
    tokens = tokenize(source)
    if not tokens or any(token.kind == "error" for token in tokens):
        return None
    try:
        return _Parser(tokens, variables).parse()
    except (_NotSubset, ValueError):
        return None
