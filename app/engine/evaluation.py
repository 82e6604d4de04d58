"""Compiled expressions and values, evaluated fast: once per step, or once per list item.

* :class:`Evaluator` wraps one compiled bare expression (:class:`app.pipelines.expressions.Expression`).
  ``evaluate(variables)`` evaluates it once; ``bind(variables)`` prepares it for many evaluations
  and returns ``fn(item, index)``.
* :class:`~app.engine.values.ValueTemplate` (in :mod:`app.engine.values`) is a value from the file
  (``with``, ``to``, ``outputs``...) with its ``${{ }}`` compiled into evaluators; same two entry
  points; results are JSON values.

Speed, measured on one core: a pure path such as ``item.score`` never reaches CEL (~0.1 µs); the
common subset of CEL (paths, literals, arithmetic, comparisons, ``? :``, ``size``, ``in``,
``upper``/``lower``/``trim``/``join``/``default``...) runs as Python closures with CEL as the judge
of unusual items (0.4-1 µs, see :mod:`app.engine.compiled`); other expressions (list macros...)
and the items the closures do not settle run on one ``cel.Context`` per bound step (6-9 µs),
built when first needed, whose run-wide variables are converted once, with ``item``/``index``
given through the context's variable resolver (``Context.add_variable`` would rebuild the whole
environment, all step outputs included, for every item), and only the members the expression
reads are converted (see :mod:`app.engine.paths`).

From a value's second bind (:data:`GENERATE_AT_BIND`), the subset is Python source generated for
the whole value (a ``where``, a whole ``to`` with its fields and interpolations: one function, no
call per node, ~0.15-0.5 µs an item, and ``fn.many`` for a whole list), the general path above
judging the items it does not settle (see :mod:`app.engine.compiled_gen`).
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Mapping
from typing import Any

from app.engine.compiled import Code, compile_code
from app.engine.compiled_gen import Emitter, Factory, NotGenerated
from app.engine.compiled_ops import Fallback
from app.engine.paths import Analysis, analyze, project, projector, read_path
from app.errors import ExpressionError
from app.pipelines.expressions import (
    Expression,
    Scope,
    compile_expression,
)

logger = logging.getLogger(__name__)

ItemFn = Callable[[Any, int], Any]
"""A per-item function: ``fn(item, index)``."""

_PER_ITEM = frozenset({"item", "index"})

GENERATE_AT_BIND = 2
"""The bind of a value (or bare expression) that generates its per-item function (compiling one
costs ~0.5 ms): the first bind, a run that may be the plan's only one, uses the general path; a
plan run again (cached per revision) gets the generated function from its second run on."""


class Evaluator:
    """One bare CEL expression, compiled once; evaluated with the shortcuts of :mod:`app.engine.paths`."""

    __slots__ = ("_binds", "_factory", "_reader", "analysis", "code", "expression", "roots", "source")

    def __init__(self, expression: Expression) -> None:
        self.expression = expression
        self.source = expression.source
        self.analysis: Analysis = analyze(expression.source)
        # The variables to hand to CEL: every root CEL names that the engine provides.
        self.roots = frozenset(expression.roots()) | frozenset(self.analysis.projections)
        # The common subset is evaluated by Python closures, CEL judging the unusual items
        # (see app.engine.compiled); None: CEL alone.
        self.code: Code | None = None if self.analysis.path is not None else compile_code(self.source)
        self._factory: Factory | None = None  # the generated per-item function (app.engine.compiled_gen)
        self._binds = 0  # binds counted up to GENERATE_AT_BIND, when the function is generated
        self._reader: ItemFn | None = None  # an item path's reader: the same for every bind

    def emit(self, emitter: Emitter) -> str:
        """Write the plain case of this expression's per-item value (its ``bind``) into ``emitter``."""
        path = self.analysis.path
        if path is not None:
            if path[0] == "index" and path[1]:
                raise NotGenerated("a member of index")
            return emitter.read(*path)
        if self.code is None:
            raise NotGenerated("CEL alone")
        return emitter.expression(self.code.tree)

    @classmethod
    def compile(cls, source: str) -> Evaluator:
        """Compile a bare expression; raises ``ExpressionSyntaxError``."""
        return cls(compile_expression(source))

    @property
    def fast(self) -> bool:
        """Whether the expression is a pure path, read without CEL."""
        return self.analysis.path is not None

    def step_refs(self) -> set[str]:
        return self.expression.step_refs()

    def _scope(self, variables: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> Scope:
        projections = self.analysis.projections
        scoped: dict[str, Any] = {}
        for root in self.roots:
            if root in variables and root not in skip:
                scoped[root] = project(variables[root], projections.get(root))
        return Scope(scoped)

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """Evaluate once with these variables; raises ``ExpressionError``."""
        path = self.analysis.path
        if path is not None:
            root, keys = path
            if root not in variables:
                raise ExpressionError(f"`{self.source}`: `{root}` is not defined here")
            value = variables[root]
            try:  # JSON data: read_path's answer exactly when every key is there
                for key in keys:
                    value = value[key]
            except (KeyError, TypeError, IndexError):
                return read_path(self.source, variables[root], keys)
            return value
        if self.code is not None:
            try:
                return self.code.evaluate(variables)
            except (Fallback, RecursionError):
                pass  # CEL's answer, or CEL's error (data nested too deep for the checks, too)
        return self.expression.evaluate(self._scope(variables))

    def bind(self, variables: Mapping[str, Any]) -> ItemFn:
        """``fn(item, index)`` evaluating the expression with these variables plus ``item``/``index``:
        a generated function when the generator covers the expression (see
        :mod:`app.engine.compiled_gen`), else :meth:`bind_general`'s."""
        if self.analysis.path is None and self.code is not None:
            if self._binds < GENERATE_AT_BIND:
                self._binds += 1
                if self._binds == GENERATE_AT_BIND:
                    self._factory = generate(self.emit)
            if self._factory is not None:
                fn = self._factory(variables, self.bind_general)
                if fn is not None:
                    return fn
        return self.bind_general(variables)

    @property
    def generated(self) -> bool:
        """Whether ``bind`` gives a generated function (known once bound)."""
        return self._factory is not None

    def bind_general(self, variables: Mapping[str, Any]) -> ItemFn:
        """The per-item function without generated code: a pure path read directly, the closures of
        :mod:`app.engine.compiled` with CEL judging what they do not settle, or CEL alone."""
        source = self.source
        path = self.analysis.path
        if path is not None:
            root, keys = path
            if root == "item":
                if self._reader is None:
                    self._reader = _item_reader(source, keys)
                return self._reader
            if root == "index":
                return lambda item, index: index
            cache: list[Any] = []

            def constant(item: Any, index: int) -> Any:
                if not cache:
                    cache.append(self.evaluate(variables))
                return cache[0]

            return constant

        if self.code is None:
            return self._bind_cel(variables)
        compiled = self.code.bind(variables)
        with_cel: list[ItemFn] = []  # CEL's per-item function, built when an item first needs it

        def compiled_or_cel(item: Any, index: int) -> Any:
            try:
                return compiled(item, index)
            except (Fallback, RecursionError):
                if not with_cel:
                    with_cel.append(self._bind_cel(variables))
                return with_cel[0](item, index)

        return compiled_or_cel

    def _bind_cel(self, variables: Mapping[str, Any]) -> ItemFn:
        """The per-item function through CEL: one context, ``item``/``index`` through the resolver."""
        scope = self._scope(variables, skip=_PER_ITEM)
        scope.variables["item"] = None
        scope.variables["index"] = 0
        context = scope.context()
        current: dict[str, Any] = {}
        # Consulted before the registered variables; None falls through to them (item: None).
        context.set_variable_resolver(current.get)
        expression = self.expression
        loops = expression.loops is not None  # list macros: the evaluation limit applies per item
        if "item" not in self.roots:

            def by_index(item: Any, index: int) -> Any:
                current["index"] = index
                return expression.evaluate(scope)

            return by_index
        tree = self.analysis.projections.get("item")
        if tree is None:

            def whole(item: Any, index: int) -> Any:
                current["item"] = item
                current["index"] = index
                if loops:
                    expression.check_item(scope, item)
                return expression.evaluate(scope)

            return whole

        cut = projector(tree)

        def projected(item: Any, index: int) -> Any:
            current["item"] = cut(item)
            current["index"] = index
            if loops:
                expression.check_item(scope, current["item"])
            return expression.evaluate(scope)

        return projected


def _item_reader(source: str, keys: tuple[str, ...]) -> ItemFn:
    """``item.a.b`` read with plain dict lookups; anything unusual goes through :func:`read_path`."""
    if not keys:
        return lambda item, index: item
    if len(keys) == 1:
        (key,) = keys

        def read_one(item: Any, index: int) -> Any:
            if type(item) is dict and key in item:
                return item[key]
            return read_path(source, item, keys)

        getter = operator.itemgetter(key)

        def many(items: list[Any], start: int, stop: int) -> list[Any]:
            # ``item[key]`` of every item in C: for JSON items (dicts, lists, scalars, null) it
            # succeeds exactly when ``read_one`` reads the key; anything else is read one by one.
            part = items if start == 0 and stop == len(items) else items[start:stop]
            try:
                return list(map(getter, part))
            except (KeyError, TypeError, IndexError):
                return [read_one(items[index], index) for index in range(start, stop)]

        read_one.many = many  # type: ignore[attr-defined]  # see evaluate_each
        return read_one

    def read(item: Any, index: int) -> Any:
        value = item
        for key in keys:
            if type(value) is dict and key in value:
                value = value[key]
            else:
                return read_path(source, item, keys)
        return value

    return read


def generate(emit: Callable[[Emitter], str]) -> Factory | None:
    """The generated per-item function of what ``emit`` writes (see :mod:`app.engine.compiled_gen`),
    or None when the generator does not cover it or would only call general functions."""
    emitter = Emitter()
    try:
        result = emit(emitter)
        if not emitter.inline:
            return None
        return emitter.finish(result)
    except (NotGenerated, RecursionError, SyntaxError, MemoryError):
        return None
    except Exception:  # a generator bug must not fail a run: the general path serves the value
        logger.warning("generating a per-item function failed; the general path serves it", exc_info=True)
        return None
