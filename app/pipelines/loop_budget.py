"""The evaluation limit of expressions: a work budget for CEL's list macros.

CEL has no loops, but its macros (``all``, ``exists``, ``exists_one``, ``map``, ``filter``) iterate
lists and maps, and they nest. The CEL runtime evaluates on the server's event loop and holds the GIL,
so a cheap-looking expression over a large list would stall every run and request of every account.
Measured with the runtime in use: ``xs.exists(a, ...)`` costs ~0.6 µs per item, but ``map`` and
``filter`` copy the list they build at every item, so ``xs.map(a, a)`` costs ~0.09 s for 1,000 items
and ~9 s for 10,000; ``xs.map(a, xs.map(b, a + b))`` ~6 s for 300.

So before an expression with macros is evaluated, its work is estimated from the data it reads and
refused over :data:`LOOP_BUDGET`:

* the macros are read from the expression's tokens, with their nesting, and whether each iterates a
  list held by a variable (``xs.map``, ``steps.x.output.items.filter``: the longest list of the data
  read) or by the element of an enclosing macro (``a.tags.exists``: the longest list or map found
  inside an element of a list);
* the elements are weighed by what copying them costs the runtime (a number 1, a map of 10 short
  strings 82: copies of maps are what make ``map``/``filter`` slow);
* a macro over ``k`` elements of weight ``w`` costs ``k * (9 + 3w + its body)``, plus ``k * k * w``
  when it builds a list.

The budget (~0.5 s of evaluation, estimates err on the slow side) allows one ``map`` over ~2,700
numbers, one ``exists`` over ~600,000, a ``filter`` over ~300 records of 10 fields (0.28 s measured),
a ``map`` inside a ``map`` over ~190 numbers. Over it, the expression fails with an
:class:`~app.errors.ExpressionError` saying what to use instead: ``core.map``/``core.filter`` steps
iterate in Python in linear time.

Measuring walks the data the expression reads once per evaluation scope (cached by the caller).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.errors import ExpressionError
from app.pipelines.cel_lexer import MACROS, Token, tokenize

LOOP_BUDGET = 7_500_000
"""Work units allowed per evaluation (a unit is ~66 ns with the CEL runtime in use: ~0.5 s)."""
ITERATION_WEIGHT = 9
"""Units per element a macro visits, besides 3 per unit of the element's weight."""
BUILDING_MACROS = frozenset({"map", "filter"})


@dataclass(slots=True)
class MacroCall:
    """One macro call: its name, whether its list comes from an enclosing macro's element, its body."""

    name: str
    inner: bool  # the receiver starts with a variable bound by an enclosing macro
    body: list[MacroCall] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LoopShape:
    """The macro calls of an expression, outermost first."""

    calls: tuple[MacroCall, ...]

    @property
    def depth(self) -> int:
        """How deep the macros nest."""

        def deepest(calls: Iterable[MacroCall]) -> int:
            return max((1 + deepest(call.body) for call in calls), default=0)

        return deepest(self.calls)

    def cost(self, sizes: DataSizes) -> int:
        """Estimated work units of evaluating the macros over data of these sizes.

        A macro over ``k`` elements of weight ``w`` costs ``k * (ITERATION_WEIGHT + 3 * w + its body)``,
        plus ``k * k * w`` when it builds a list (each step copies the list built so far).
        """
        weight = sizes.weight

        def of(calls: Iterable[MacroCall]) -> int:
            total = 0
            for call in calls:
                size = sizes.inner if call.inner else sizes.outer
                total += size * (ITERATION_WEIGHT + 3 * weight + of(call.body))
                if call.name in BUILDING_MACROS:
                    total += size * size * weight
            return total

        return of(self.calls)


def loop_shape(source: str) -> LoopShape | None:
    """The macro calls of an expression, or None when it has none."""
    try:
        tokens = tokenize(source)
    except Exception:  # the expression compiled, so this should not happen; no budget then
        return None
    calls, _ = _calls(tokens, 0, len(tokens), frozenset())
    return LoopShape(tuple(calls)) if calls else None


def _receiver_root(tokens: list[Token], dot: int) -> str | None:
    """The first identifier of the receiver ending just before ``tokens[dot]`` (``a`` of ``a.b.c.map``)."""
    i = dot - 1
    depth = 0
    while i >= 0:
        text = tokens[i].text
        if text in (")", "]"):
            depth += 1
        elif text in ("(", "["):
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and not (tokens[i].kind in ("ident", "keyword") or text == "."):
            break
        i -= 1
    first = tokens[i + 1] if i + 1 < dot else None
    return first.text if first is not None and first.kind == "ident" else None


def _calls(tokens: list[Token], start: int, end: int, bound: frozenset[str]) -> tuple[list[MacroCall], int]:
    """The macro calls in ``tokens[start:end]`` (nested ones inside their bodies)."""
    calls: list[MacroCall] = []
    i = start
    while i < end:
        token = tokens[i]
        if (
            token.text == "."
            and i + 2 < end
            and tokens[i + 1].text in MACROS
            and tokens[i + 2].text == "("
            and tokens[i + 2].kind == "punct"
        ):
            name = tokens[i + 1].text
            root = _receiver_root(tokens, i)
            close = _closing(tokens, i + 2, end)
            variable = tokens[i + 3].text if i + 3 < close and tokens[i + 3].kind == "ident" else None
            inner_bound = bound | {variable} if variable else bound
            body, _ = _calls(tokens, i + 3, close, inner_bound)
            calls.append(MacroCall(name, inner=root in bound, body=body))
            i = close + 1
            continue
        i += 1
    return calls, i


def _closing(tokens: list[Token], opening: int, end: int) -> int:
    """The index of the parenthesis closing ``tokens[opening]`` (``end`` when unclosed)."""
    depth = 0
    for i in range(opening, end):
        if tokens[i].kind != "punct":
            continue
        if tokens[i].text == "(":
            depth += 1
        elif tokens[i].text == ")":
            depth -= 1
            if depth == 0:
                return i
    return end


@dataclass(frozen=True, slots=True)
class DataSizes:
    """What the cost of macros depends on, measured on the data an expression reads."""

    outer: int = 0  # the longest list (or map) anywhere
    inner: int = 0  # the longest list (or map) inside an element of a list
    weight: int = 1  # the heaviest element of a list, in copy units (see element_weight)

    def merge(self, other: DataSizes) -> DataSizes:
        return DataSizes(
            max(self.outer, other.outer), max(self.inner, other.inner), max(self.weight, other.weight)
        )


def _scalar_weight(value: Any) -> int:
    return 1 + len(value) // 64 if isinstance(value, str | bytes) else 1


def measure(value: Any) -> DataSizes:
    """The :class:`DataSizes` of ``value`` (one pass, no recursion).

    Weights are what copying a value costs the CEL runtime, measured: a scalar 1 (long strings a bit
    more), a list 1 + its elements, a map 2 + 7 per entry + its values.
    """
    outer = inner = 0
    heaviest = 1
    weights: dict[int, int] = {}
    stack: list[tuple[Any, bool, bool]] = [(value, False, False)]  # (node, in a list, children done)
    while stack:
        node, in_list, done = stack.pop()
        is_map = isinstance(node, Mapping)
        if not is_map and not isinstance(node, list | tuple):
            continue
        children = list(node.values()) if is_map else list(node)
        if not done:
            size = len(node)
            outer = max(outer, size)
            if in_list:
                inner = max(inner, size)
            stack.append((node, in_list, True))
            below = in_list or not is_map
            stack.extend(
                (child, below, False) for child in children if isinstance(child, Mapping | list | tuple)
            )
            continue
        child_weights = [weights.get(id(child)) or _scalar_weight(child) for child in children]
        if is_map:
            weights[id(node)] = 2 + 7 * len(children) + sum(child_weights)
        else:
            weights[id(node)] = 1 + sum(child_weights)
            heaviest = max(heaviest, *child_weights) if child_weights else heaviest
    return DataSizes(outer, inner, heaviest)


def check_budget(source: str, shape: LoopShape, sizes: DataSizes) -> None:
    """Raise :class:`ExpressionError` when the expression's macros would cost over :data:`LOOP_BUDGET`."""
    cost = shape.cost(sizes)
    if cost > LOOP_BUDGET:
        nested = f"its {shape.depth} levels of nested list macros" if shape.depth > 1 else "its list macro"
        raise ExpressionError(
            f"`{source}`: {nested} over lists of up to {sizes.outer} items would take too long to "
            "evaluate (the evaluation limit): use core.map / core.filter steps for long lists",
            details={"items": sizes.outer, "cost": cost, "limit": LOOP_BUDGET},
        )


def read_values(
    roots: Iterable[str], step_ids: Iterable[str], variables: Mapping[str, Any]
) -> list[tuple[str, Any]]:
    """``(name, value)`` of what an expression reads: whole roots, but only the named steps of ``steps``."""
    values: list[tuple[str, Any]] = []
    for root in roots:
        if root not in variables:
            continue
        value = variables[root]
        if root == "steps" and isinstance(value, Mapping):
            values.extend((f"steps.{step}", value[step]) for step in step_ids if step in value)
        else:
            values.append((root, value))
    return values
