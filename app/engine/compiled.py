"""CEL value expressions compiled into Python closures, with CEL as the judge of unusual items.

Handing one item to CEL costs several microseconds (a ``cel.Context`` round trip and the
conversion of values both ways). Most expressions of a pipeline are small: paths, literals,
arithmetic, comparisons, ``upper(item.title)``, ``item.a ? x : y``. :func:`compile_code` turns the
subset parsed by :mod:`app.engine.compiled_parse` into a :class:`Code`; ``code.bind(variables)``
gives ``fn(item, index)`` (run-wide values are read, and run-wide sub-expressions computed, once).

The contract: for the plain cases ``fn`` gives exactly
CEL's answer (same value, same Python type); for anything else it raises :class:`Fallback` and
the caller evaluates that item with CEL, so unusual results and every error message stay CEL's:

* numbers: ``int`` within 64 bits (a bool is not an int), ``float``; ``+ - *`` on two ints
  overflowing 64 bits, ``/`` and ``%`` by zero and ``INT_MIN / -1`` fall back; ``/`` truncates
  toward zero and ``%`` takes the sign of the dividend, like CEL; int and double never mix;
  ``float / 0.0`` and ``%`` on doubles fall back; an int of data beyond 64 bits falls back;
* ``+`` joins two strings or two lists; ``size`` of a string counts UTF-8 bytes (as this CEL does);
* ``==``/``!=`` compare scalars, lists and maps deeply (numbers across int and double);
  ordering takes two numbers, two strings or two booleans; ``in`` a list or a map (string keys);
* ``a.b``, ``a["k"]`` read keys that exist, ``a[i]`` an index within the list;
* ``c ? a : b`` and ``&&``/``||`` take booleans and evaluate lazily, like CEL;
* ``lower``, ``upper``, ``trim``, ``join``, ``default`` call the very same Python functions CEL
  calls (``FUNCTIONS``), with arguments CEL would hand over unchanged; ``default(path, x)`` follows
  the compile-time rewrite of :mod:`app.pipelines.cel_rewrite` (a missing key gives ``x``).

>>> fn = compile_code('upper(item.title) + " #" + item.tag').bind({})
>>> fn({"title": "tea", "tag": "x"}, 0)
'TEA #x'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from app.engine.compiled_ops import (
    ARITH,
    FALLBACK,
    METHODS,
    ORDER,
    RELATION,
    Fallback,
    boolean,
    check_plain,
    equal,
    function_caller,
    is_int,
    member,
    negate,
    size_of,
)
from app.engine.compiled_parse import INT_MAX, INT_MIN, Node, NotSubset, children, parse, roots
from app.pipelines.expressions import FUNCTIONS

__all__ = ["Code", "Fallback", "check_plain", "compile_code", "may_return_data", "static_path"]

Fn = Callable[[Any, int], Any]

_PER_ITEM = ("item", "index")


def _fail(item: Any, index: int) -> Any:
    raise FALLBACK


# ----------------------------------------------------------------------------- code generation


def static_path(node: Node) -> tuple[str, tuple[Any, ...]] | None:
    """(root, keys) when ``node`` is a variable followed by literal member and index reads."""
    keys: list[Any] = []
    while True:
        if node[0] == "member":
            keys.append(node[2])
        elif node[0] == "index" and node[2][0] == "lit" and type(node[2][1]) in (str, int):
            keys.append(node[2][1])
        else:
            break
        node = node[1]
    if node[0] != "root":
        return None
    return node[1], tuple(reversed(keys))


def _item_path(keys: tuple[Any, ...]) -> Fn:
    if not keys:
        return lambda item, index: item
    if len(keys) == 1 and type(keys[0]) is str:
        (key,) = keys

        def read_one(item: Any, index: int) -> Any:
            if type(item) is dict and key in item:
                return item[key]
            raise FALLBACK

        return read_one

    def read(item: Any, index: int) -> Any:
        value = item
        for key in keys:
            value = member(value, key)
        return value

    return read


class _Builder:
    """Turns a tree into closures for one set of run-wide variables (``per_item``: item and index
    are the arguments of the closures; otherwise they too are read from the variables)."""

    def __init__(self, variables: Mapping[str, Any], code: Code | None = None) -> None:
        self.variables = variables
        self.per_item = code is not None
        # ids of the nodes reading item or index, of those reading no other variable (their
        # closures serve every bind: kept in ``shared``); empty for a run-wide evaluation.
        self.varying = code.varying if code is not None else frozenset()
        self.independent = code.independent if code is not None else frozenset()
        self.shared: dict[int, tuple[Fn, bool, Any]] = code.shared if code is not None else {}
        self.constants: dict[Fn, Any] = {}  # the closures built for values known at bind time

    def build(self, node: Node) -> Fn:
        key = id(node)
        shared = key in self.independent
        if shared and key in self.shared:
            fn, known, value = self.shared[key]
            if known:
                self.constants[fn] = value
            return fn
        fn = self.gen(node)
        entry: tuple[Fn, bool, Any] = (fn, False, None)
        if key not in self.varying:
            try:  # the same for every item: computed once
                value = fn(None, 0)
            except Fallback:
                entry = (_fail, False, None)
            else:
                if type(value) is list or type(value) is dict:
                    # Literal lists and maps stay new objects on every evaluation, as CEL's are.
                    return fn if node[0] in ("list", "map") else _constant(value)
                entry = (_constant(value), True, value)
                self.constants[entry[0]] = value
        if shared:
            self.shared[key] = entry
        return entry[0]

    def gen(self, node: Node) -> Fn:
        """The closure of ``node``."""
        head = node[0]
        if head == "lit":
            value = node[1]
            return lambda item, index: value
        path = static_path(node)
        if path is not None:
            return self.path(*path)
        if head in ("member", "index"):
            obj = self.build(node[1])
            key = self.build(node[2]) if head == "index" else _constant(node[2])
            return lambda item, index: member(obj(item, index), key(item, index))
        if head == "list":
            parts = [self.build(part) for part in node[1]]
            return lambda item, index: [fn(item, index) for fn in parts]
        if head == "map":
            entries = [(key, self.build(part)) for key, part in node[1]]
            return lambda item, index: {key: fn(item, index) for key, fn in entries}
        if head == "neg":
            operand = self.build(node[1])
            return lambda item, index: negate(operand(item, index))
        if head == "not":
            operand = self.build(node[1])
            return lambda item, index: not boolean(operand(item, index))
        if head == "rel":
            return self.relation(node[1], self.build(node[2]), self.build(node[3]))
        if head == "arith":
            op = ARITH[node[1]]
            left, right = self.build(node[2]), self.build(node[3])
            return lambda item, index: op(left(item, index), right(item, index))
        if head == "and":
            return self.logical(node, False)
        if head == "or":
            return self.logical(node, True)
        if head == "cond":
            return self.conditional(node)
        if head == "method":
            return self.method(node)
        if head == "call":
            return self.call(node)
        if head == "safe_default":
            return self.safe_default(node)
        raise NotSubset  # pragma: no cover - the parser makes no other node

    def path(self, root: str, keys: tuple[Any, ...]) -> Fn:
        if self.per_item and root in _PER_ITEM:
            if root == "index":
                return _fail if keys else lambda item, index: index  # a member of an int: CEL's error
            return _item_path(keys)
        if root not in self.variables:
            return _fail  # an undefined variable: CEL's error
        value = self.variables[root]
        return lambda item, index: _read_keys(value, keys)

    def relation(self, op: str, left: Fn, right: Fn) -> Fn:
        """A relation; against a string or number known at bind time, the plain case inline."""
        if right in self.constants and op != "in":
            constant = self.constants[right]
            kind = type(constant)
            if kind is str and op in ("==", "!="):
                wanted = op == "=="

                def versus_text(item: Any, index: int) -> bool:
                    value = left(item, index)
                    if type(value) is str:
                        return (value == constant) is wanted
                    return equal(value, constant) is wanted

                return versus_text
            if (kind is int and INT_MIN <= constant <= INT_MAX) or (kind is float and constant == constant):
                if op in ORDER:
                    compare = ORDER[op]

                    def versus_number(item: Any, index: int) -> bool:
                        value = left(item, index)
                        if type(value) is kind and (
                            value == value if kind is float else INT_MIN <= value <= INT_MAX
                        ):
                            return compare(value, constant)
                        return RELATION[op](value, constant)  # mixed kinds, NaN, not a number...

                    return versus_number
        relation = RELATION[op]
        return lambda item, index: relation(left(item, index), right(item, index))

    def logical(self, node: Node, absorbing: bool) -> Fn:
        left, right = self.build(node[1]), self.build(node[2])

        def logical(item: Any, index: int) -> bool:
            if boolean(left(item, index)) is absorbing:
                return absorbing
            return boolean(right(item, index))

        return logical

    def conditional(self, node: Node) -> Fn:
        test, then, otherwise = (self.build(part) for part in node[1:])

        def conditional(item: Any, index: int) -> Any:
            if boolean(test(item, index)):
                return then(item, index)
            return otherwise(item, index)

        return conditional

    def method(self, node: Node) -> Fn:
        name, receiver = node[1], self.build(node[2])
        if name == "size":
            return lambda item, index: size_of(receiver(item, index))
        method = METHODS[name]
        argument = self.build(node[3][0])
        return lambda item, index: method(receiver(item, index), argument(item, index))

    def call(self, node: Node) -> Fn:
        name, args = node[1], [self.build(arg) for arg in node[2]]
        if name == "size":
            (operand,) = args
            return lambda item, index: size_of(operand(item, index))
        function = function_caller(name)
        if len(args) == 1:
            (only,) = args
            single = FUNCTIONS[name]

            def call_one(item: Any, index: int) -> Any:
                value = only(item, index)
                if type(value) is not str:
                    check_plain(value)
                try:
                    result = single(value)
                except Exception:
                    raise FALLBACK from None  # CEL calls it again and words the error
                return result if type(result) is str else check_plain(result)

            return call_one
        return lambda item, index: function(*[arg(item, index) for arg in args])

    def safe_default(self, node: Node) -> Fn:
        """``default(path, fallback)``: the fallback when a step of the path is missing or null."""
        steps: list[Fn] = []
        path = node[1]
        while path[0] != "root":
            steps.append(_constant(path[2]) if path[0] == "member" else self.build(path[2]))
            path = path[1]
        steps.reverse()
        start = self.build(path)
        fallback = self.build(node[2])

        def safe_default(item: Any, index: int) -> Any:
            value = start(item, index)
            for step in steps:
                key = step(item, index)
                kind = type(value)
                if kind is dict:
                    if type(key) is not str:
                        raise FALLBACK
                    if key not in value:
                        return fallback(item, index)
                    value = value[key]
                elif kind is list:
                    if not is_int(key):
                        raise FALLBACK
                    if not 0 <= key < len(value):
                        return fallback(item, index)
                    value = value[key]
                else:
                    check_plain(value)
                    return fallback(item, index)  # a scalar or null on the way
            return fallback(item, index) if value is None else value

        return safe_default


def _constant(value: Any) -> Fn:
    return lambda item, index: value


def _read_keys(value: Any, keys: tuple[Any, ...]) -> Any:
    for key in keys:
        value = member(value, key)
    return value


def _varying(tree: Node) -> set[int]:
    """The ids of the nodes of ``tree`` that read ``item`` or ``index`` (their values vary)."""
    found: set[int] = set()

    def walk(node: Node) -> bool:
        varies = node[1] in _PER_ITEM if node[0] == "root" else False
        for child in children(node):
            varies = walk(child) or varies
        if varies:
            found.add(id(node))
        return varies

    walk(tree)
    return found


def _independent(tree: Node) -> set[int]:
    """The ids of the nodes of ``tree`` that read no variable but ``item`` and ``index``."""
    found: set[int] = set()

    def walk(node: Node) -> bool:
        alone = node[1] in _PER_ITEM if node[0] == "root" else True
        for child in children(node):
            alone = walk(child) and alone
        if alone:
            found.add(id(node))
        return alone

    walk(tree)
    return found


def may_return_data(tree: Node) -> bool:
    """Whether the value may come from data unchecked (a path, a literal list, ``list + list``...)."""
    head = tree[0]
    if head in ("call", "rel", "and", "or", "not", "method", "neg"):
        return False
    return not (head == "arith" and tree[1] != "+")


class Code:
    """A compiled expression of the subset: ``bind(variables)`` gives ``fn(item, index)``."""

    __slots__ = ("independent", "roots", "shared", "source", "tree", "varying")

    def __init__(self, source: str, tree: Node) -> None:
        self.source = source
        self.tree = tree
        self.roots = frozenset(roots(tree))
        self.varying = frozenset(_varying(tree))
        self.independent = frozenset(_independent(tree))
        self.shared: dict[int, tuple[Fn, bool, Any]] = {}  # closures that serve every bind

    def bind(self, variables: Mapping[str, Any]) -> Fn:
        """``fn(item, index)`` with these run-wide variables; raises :class:`Fallback` per item when
        CEL must answer. Run-wide parts are computed here, once."""
        fn = _Builder(variables, self).build(self.tree)
        if not may_return_data(self.tree):
            return fn
        return lambda item, index: check_plain(fn(item, index))

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """The value with every variable (``item``/``index`` included) read from ``variables``;
        raises :class:`Fallback` when CEL must answer."""
        return check_plain(_Builder(variables).build(self.tree)(None, 0))


def compile_code(source: str) -> Code | None:
    """The compiled form of a bare expression, or None when it is outside the subset."""
    try:
        return Code(source, parse(source))
    except NotSubset:
        return None
