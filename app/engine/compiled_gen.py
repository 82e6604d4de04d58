"""Per-item functions generated as Python source: the plain case of a whole value in one function.

:mod:`app.engine.compiled` evaluates an expression as a tree of closures: one Python call per
node and per item (``item.score >= inputs.min_score && item.kind != "spam"`` is seven calls). Here
the same subset is written out as the source of one function per value (a ``where``, a whole
``to`` of ``core.map`` with its fields and interpolations), compiled once with :func:`compile` and
bound per run: run-wide parts (``inputs.min_score``) are read when the function is bound, the rest
is straight-line Python with the plain case inline.

The contract is the closures' one, per whole value: for plain items the generated function gives
exactly what the general path (closures, pure paths, CEL) gives — same value, same Python type;
for anything else (:class:`Fallback`, a missing key, data nested too deep) it hands the item to the
general path, bound on first need, which then gives the value or the error (same message, same
type). Nothing of the user's text is pasted into the source: literals are ``repr`` of a ``str``,
``int``, ``bool`` or ``None``, every other value and every helper is bound through the namespace,
and names in the source are generated (``t3``, ``h1``). What the generator does not cover
(``default(path, x)``, ``index.x``, expressions CEL alone evaluates) is either left to the general
function of that part, bound per run (:meth:`Emitter.general`), or makes the generator decline
(:class:`NotGenerated`): then the value keeps its general path.

>>> emitter = Emitter()
>>> factory = emitter.finish(emitter.expression(parse("item.a + 1 > inputs.n")))
>>> fn = factory({"inputs": {"n": 2}}, lambda variables: None)
>>> fn({"a": 5}, 0), fn({"a": 1}, 0)
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from app.engine.compiled import may_return_data, static_path
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
    member,
    negate,
    size_of,
)
from app.engine.compiled_parse import INT_MAX, INT_MIN, Node, children, parse
from app.pipelines.expressions import FUNCTIONS, to_json_value

__all__ = ["Emitter", "Factory", "NotGenerated", "parse"]

ItemFn = Callable[[Any, int], Any]
Factory = Callable[[Mapping[str, Any], Callable[[Mapping[str, Any]], ItemFn]], ItemFn | None]
"""``factory(variables, general)``: the per-item function bound to ``variables`` (``general(variables)``
binds the general path, called on the first item that needs it), or None when a run-wide part is not
a plain case (then the caller binds the general path itself)."""

MAX_SOURCE = 20_000
"""Generated source longer than this (a huge value) is not compiled: the general path serves it."""

_PER_ITEM = ("item", "index")
_STR_METHODS = {"lower": "lower", "upper": "upper", "trim": "strip"}
"""Functions whose plain case on a string is the ``str`` method (what ``FUNCTIONS`` computes)."""


class NotGenerated(Exception):
    """The generator does not cover this value: it keeps its general path."""


def _call_one(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``function(value)`` as the closures call a one-argument function (app.engine.compiled.call)."""

    def call(value: Any) -> Any:
        if type(value) is not str:
            check_plain(value)
        try:
            result = function(value)
        except Exception:
            raise Fallback from None
        return result if type(result) is str else check_plain(result)

    return call


def _reads_item(node: Node) -> bool:
    if node[0] == "root":
        return bool(node[1] in _PER_ITEM)
    return any(_reads_item(child) for child in children(node))


class _Block:
    """Lines of source at an indentation; ``depth`` 0 is the function's unconditional part."""

    def __init__(self, indent: int) -> None:
        self.lines: list[str] = []
        self.indent = indent
        self.depth = 0

    def add(self, text: str) -> None:
        self.lines.append("    " * (self.indent + self.depth) + text)


class Emitter:
    """Writes the source of one per-item function; :meth:`finish` compiles it into a :data:`Factory`.

    The ``expression``/``path``/``general`` methods append the statements computing a value and
    return a Python expression (a name or a literal) holding it."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {
            "Fallback": Fallback,
            "FALLBACK": FALLBACK,
            "KeyError": KeyError,
            "RecursionError": RecursionError,
            "check_plain": check_plain,
            "member": member,
            "equal": equal,
            "negate": negate,
            "boolean": boolean,
            "size_of": size_of,
            "to_json_value": to_json_value,
            "str": str,
            "int": int,
            "float": float,
            "bool": bool,
            "dict": dict,
            "list": list,
            "type": type,
        }
        self.bound: dict[int, str] = {}  # id of a bound object -> its name
        self.hoisted = _Block(2)  # run-wide statements, in the factory
        self.item = _Block(3)  # per-item statements, in the function
        self.generals: list[str] = []  # lines binding the general functions of parts
        self.count = 0
        self.item_dict = False  # the function reads keys of item: item must be a dict
        self.cache: dict[tuple[str, tuple[Any, ...]], str] = {}  # unconditional path reads
        self.inline = False  # some part is computed inline (not only through general functions)
        self.kinds: dict[str, type] = {}  # the Python type of literals and of some results
        self.run_wide: set[str] = set()  # names computed when the function is bound
        self.flags: dict[tuple[str, type], str] = {}  # run-wide "is a plain int/str" tests

    # ------------------------------------------------------------------ names

    def temp(self, prefix: str = "t") -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def bind(self, value: Any, prefix: str = "k") -> str:
        """A name in the namespace for ``value`` (helpers, constants, the general parts)."""
        key = id(value)
        if key not in self.bound:
            name = self.temp(prefix)
            self.names[name] = value
            self.bound[key] = name
        return self.bound[key]

    def const(self, value: Any) -> str:
        if value is None or type(value) in (str, int, bool):
            text = repr(value)
            self.kinds[text] = type(value)
            return text
        return self.bind(value)

    # ------------------------------------------------------------------ expressions

    def expression(self, tree: Node) -> str:
        """The value of a bare expression of the compiled subset, as ``Code.bind`` gives it."""
        self.inline = True
        value = self._node(tree, self.item)
        if may_return_data(tree):
            checked = self.temp()
            self.item.add(f"{checked} = {value} if type({value}) is str else check_plain({value})")
            return checked
        return value

    def _node(self, node: Node, block: _Block) -> str:
        head = node[0]
        if head == "lit":
            return self.const(node[1])
        if block is self.item and head not in ("list", "map") and not _reads_item(node):
            name = self._node(node, self.hoisted)  # run-wide: computed once, when bound
            self.run_wide.add(name)
            return name
        path = static_path(node)
        if path is not None:
            return self.path(path[0], path[1], block)
        out = self.temp("h" if block is self.hoisted else "t")
        if head in ("member", "index"):
            obj = self._node(node[1], block)
            key = self._node(node[2], block) if head == "index" else repr(node[2])
            block.add(f"{out} = member({obj}, {key})")
        elif head in ("list", "map"):
            if head == "list":
                parts = [self._node(part, block) for part in node[1]]
                block.add(f"{out} = [{', '.join(parts)}]")
            else:
                entries = [f"{key!r}: {self._node(part, block)}" for key, part in node[1]]
                block.add(f"{out} = {{{', '.join(entries)}}}")
        elif head == "neg":
            block.add(f"{out} = negate({self._node(node[1], block)})")
        elif head == "not":
            operand = self._node(node[1], block)
            self._boolean(operand, block)
            block.add(f"{out} = not {operand}")
            self.kinds[out] = bool
        elif head == "rel":
            self._relation(out, node[1], self._node(node[2], block), self._node(node[3], block), block)
        elif head == "arith":
            left, right = self._node(node[2], block), self._node(node[3], block)
            op = self.bind(ARITH[node[1]], "op")
            if node[1] == "+":
                plain = f"type({left}) is str and type({right}) is str"
                block.add(f"{out} = {left} + {right} if {plain} else {op}({left}, {right})")
            else:
                block.add(f"{out} = {op}({left}, {right})")
        elif head in ("and", "or"):
            self._logical(out, node, block, absorbing=head == "or")
        elif head == "cond":
            self._conditional(out, node, block)
        elif head == "method":
            self._method(out, node, block)
        elif head == "call":
            self._call(out, node, block)
        else:
            raise NotGenerated(head)  # safe_default: the general path
        return out

    def read(self, root: str, keys: tuple[Any, ...]) -> str:
        """A path of literal keys (``item.a.b``, ``inputs.n``): per item or run-wide by its root."""
        self.inline = True
        if root in _PER_ITEM:
            return self.path(root, keys, self.item)
        name = self.path(root, keys, self.hoisted)
        self.run_wide.add(name)
        return name

    def path(self, root: str, keys: tuple[Any, ...], block: _Block) -> str:
        """A path of literal keys read from a variable; anything but a present key falls back."""
        if root == "index":
            if keys:
                raise NotGenerated("a member of index")
            return "index"
        cached = self.cache.get((root, keys))
        if cached is not None:
            return cached
        if root == "item":
            if not keys:
                return "item"
            self.item_dict = True  # checked once, at the top of the function
            value = f"item[{keys[0]!r}]" if type(keys[0]) is str else f"member(item, {keys[0]!r})"
            rest = keys[1:]
        else:
            value = self.temp("h")
            self.hoisted.add(f"{value} = V[{root!r}]")  # a missing variable: KeyError, general path
            rest = keys
        if root == "item":
            out = self.temp()
            block.add(f"{out} = {value}")
            value = out
        for key in rest:
            out = self.temp("h" if block is self.hoisted else "t")
            block.add(f"{out} = member({value}, {key!r})")
            value = out
        if block.depth == 0:
            self.cache[(root, keys)] = out
        return out

    def _plain(self, value: str, kind: type, block: _Block) -> str | None:
        """A test that ``value`` is a ``kind`` (``int``: within 64 bits signed) as the plain case of
        a relation; ``""`` when known to be, None when known not to be."""
        known = self.kinds.get(value)
        if known is not None:
            return "" if known is kind else None  # literals: ints of the subset are within 64 bits
        test = f"type({value}) is {kind.__name__}"
        if kind is int:
            test += f" and {INT_MIN} <= {value} <= {INT_MAX}"
        if block is self.item and value in self.run_wide:  # tested once, when bound
            flag = self.flags.get((value, kind))
            if flag is None:
                flag = self.flags[(value, kind)] = self.temp("h")
                self.hoisted.add(f"{flag} = {test}")
                self.run_wide.add(flag)
            return flag
        return test

    def _relation(self, out: str, op: str, left: str, right: str, block: _Block) -> None:
        self.kinds[out] = bool
        if op == "in":
            block.add(f"{out} = {self.bind(RELATION[op], 'rel')}({left}, {right})")
            return
        if op in ORDER:
            general = f"{self.bind(RELATION[op], 'rel')}({left}, {right})"
        else:
            general = f"equal({left}, {right})" if op == "==" else f"not equal({left}, {right})"
        cases: list[str] = []
        for kind in (int, str):
            tests = (self._plain(left, kind, block), self._plain(right, kind, block))
            if tests[0] is not None and tests[1] is not None:
                # run-wide flags first: a constant of another kind skips the item's test
                ordered = sorted((test for test in tests if test), key=lambda test: test not in self.run_wide)
                cases.append(" and ".join(ordered) or "True")
        if "True" in cases:
            block.add(f"{out} = {left} {op} {right}")
        elif cases:
            test = " or ".join(f"({case})" for case in cases)
            block.add(f"{out} = {left} {op} {right} if {test} else {general}")
        else:
            block.add(f"{out} = {general}")

    def _boolean(self, value: str, block: _Block) -> None:
        self._require(value, bool, block)

    def _require(self, value: str, kind: type, block: _Block) -> None:
        """Fall back unless ``value`` is a ``kind``; known from then on when checked unconditionally."""
        if self.kinds.get(value) is kind:
            return
        block.add(f"if type({value}) is not {kind.__name__}: raise FALLBACK")
        # A fact about a per-item value, checked where every later line of the function runs
        # (run-wide names are computed before: a fact learnt here does not hold there).
        if block is self.item and block.depth == 0 and value not in self.run_wide:
            self.kinds[value] = kind

    def _logical(self, out: str, node: Node, block: _Block, *, absorbing: bool) -> None:
        self.kinds[out] = bool
        left = self._node(node[1], block)
        if not left.isidentifier():  # a literal: ``1 && x`` is CEL's error (and ``1 is True`` a warning)
            raise NotGenerated(f"a literal {left} on the left of a logical operator")
        self._boolean(left, block)
        block.add(f"if {left} is {absorbing}:")
        block.add(f"    {out} = {absorbing}")
        block.add("else:")
        block.depth += 1
        right = self._node(node[2], block)
        self._boolean(right, block)
        block.add(f"{out} = {right}")
        block.depth -= 1

    def _conditional(self, out: str, node: Node, block: _Block) -> None:
        test = self._node(node[1], block)
        self._boolean(test, block)
        block.add(f"if {test}:")
        block.depth += 1
        block.add(f"{out} = {self._node(node[2], block)}")
        block.depth -= 1
        block.add("else:")
        block.depth += 1
        block.add(f"{out} = {self._node(node[3], block)}")
        block.depth -= 1

    def _method(self, out: str, node: Node, block: _Block) -> None:
        name, receiver = node[1], self._node(node[2], block)
        if name == "size":
            block.add(f"{out} = size_of({receiver})")
            return
        argument = self._node(node[3][0], block)
        block.add(f"{out} = {self.bind(METHODS[name], 'm')}({receiver}, {argument})")
        self.kinds[out] = bool

    def _call(self, out: str, node: Node, block: _Block) -> None:
        name, args = node[1], [self._node(arg, block) for arg in node[2]]
        if name == "size":
            (operand,) = args
            block.add(f"{out} = size_of({operand})")
            return
        if len(args) == 1:
            (only,) = args
            call = self.bind(_call_one(FUNCTIONS[name]), f"f_{name}_")
            method = _STR_METHODS.get(name)
            if method is not None:  # FUNCTIONS' text of a string is the string itself
                # Anything but a string goes to the general path: the result is then known to be a
                # string, and so is the argument in what follows unconditionally.
                self._require(only, str, block)
                block.add(f"{out} = {only}.{method}()")
                self.kinds[out] = str
            else:
                block.add(f"{out} = {call}({only})")
            return
        call = self.bind(function_caller(name), f"f_{name}_")
        block.add(f"{out} = {call}({', '.join(args)})")

    # ------------------------------------------------------------------ values

    def general(self, part: Any) -> str:
        """The value of a part through its general per-item function, bound per run (``part.bind``)."""
        name = self.bind(part, "part")
        fn = self.temp("g")
        self.generals.append(f"    {fn} = {name}.bind(V)")
        out = self.temp()
        self.item.add(f"{out} = {fn}(item, index)")
        return out

    def to_json(self, value: str) -> str:
        """``value`` (a plain value) as the general path hands it on: lists and maps copied."""
        if self.kinds.get(value) in (str, bool):
            return value
        out = self.temp()
        container = f"type({value}) is list or type({value}) is dict"
        self.item.add(f"{out} = to_json_value({value}) if {container} else {value}")
        return out

    def interpolate(self, texts: list[str], values: list[str], text_of: Callable[[Any], str]) -> str:
        """``texts[0] + text(values[0]) + texts[1] + ...``: each value as text, ``text_of``
        (``evaluation._text_of``) for what is neither a string nor an int (``str`` of either)."""
        shown: list[str] = []
        for value in values:
            if self.kinds.get(value) is str:
                shown.append(value)
            else:
                general = f"{self.bind(text_of, 'text_of')}({value})"
                shown.append(f"({value} if type({value}) is str or type({value}) is int else {general})")
        # %s of a str is the str, of an int its str(); the texts are bound, not written in the source
        template = self.bind("%s".join(text.replace("%", "%%") for text in texts), "text")
        out = self.temp()
        self.item.add(f"{out} = {template} % ({', '.join(shown)},)")
        self.kinds[out] = str
        return out

    def line(self, text: str) -> None:
        self.item.add(text)

    # ------------------------------------------------------------------ the function

    def source(self, result: str) -> str:
        """The factory: run-wide statements, then ``fn(item, index)`` and ``fn.many(items, start,
        stop)``: ``[fn(items[i], i) for i in range(start, stop)]`` with the body in the loop, without
        a call per item (see :func:`app.engine.steps.common.evaluate_each`)."""
        guard = ["if type(item) is not dict: raise FALLBACK"] if self.item_dict else []
        body = [*(" " * 12 + line for line in guard), *self.item.lines]
        lines = [
            "def factory(V, general):",
            "    try:",
            *(self.hoisted.lines or ["        pass"]),
            "    except (Fallback, KeyError, RecursionError):",
            "        return None",
            *self.generals,
            "    slow = None",
            "    def fn(item, index):",
            "        nonlocal slow",
            "        try:",
            *body,
            f"            return {result}",
            "        except (Fallback, KeyError, RecursionError):",
            "            pass",
            "        if slow is None:",
            "            slow = general(V)",
            "        return slow(item, index)",
            "    def many(items, start, stop):",
            "        nonlocal slow",
            "        out = []",
            "        append = out.append",
            "        for index in range(start, stop):",
            "            item = items[index]",
            "            try:",
            *("    " + line for line in body),
            f"                append({result})",
            "                continue",
            "            except (Fallback, KeyError, RecursionError):",
            "                pass",
            "            if slow is None:",
            "                slow = general(V)",
            "            append(slow(item, index))",
            "        return out",
            "    fn.many = many",
            "    return fn",
        ]
        return "\n".join(lines) + "\n"

    def finish(self, result: str) -> Factory:
        """Compile the function returning ``result``; raises :class:`NotGenerated` when too big."""
        text = self.source(result)
        if len(text) > MAX_SOURCE:
            raise NotGenerated("too big")
        namespace = dict(self.names)
        exec(compile(text, "<mashpipe generated>", "exec"), namespace)  # generated: no user text in it
        factory: Factory = namespace["factory"]
        return factory
