"""CEL expressions and ``${{ }}`` templates: the only place that knows about the CEL library.

* A *bare expression* (``if``, ``where``, ``by``) is compiled once with :func:`compile_expression`.
* A *value* from the pipeline file (string, list, dict, number...) is compiled once with
  :func:`compile_value`; strings holding ``${{ expr }}`` become templates. A field that is exactly
  one ``${{ expr }}`` yields the expression's native value; text around expressions interpolates.
* Evaluation takes a :class:`Scope` (the variables ``inputs``, ``steps``, ``trigger``, ``secrets``,
  ``run``, and ``item``/``index`` per element). Values that come from data are never evaluated again.

``default(a.b.c, fallback)`` gives the fallback when a key on the path is missing too (the call is
rewritten at compile time, see :mod:`app.pipelines.cel_rewrite`); ``timestamp()`` also accepts
epoch seconds; ``lower``/``upper``/``trim`` treat null as the empty string.

Measured: the Rust-based CEL evaluates a compiled predicate in ~1-10 µs; its list macros are
quadratic over big lists, so list steps evaluate one compiled expression per item instead.
"""

from __future__ import annotations

import json as _json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import cel

from app.errors import ExpressionError
from app.pipelines.cel_lexer import UnclosedTemplate, split_template
from app.pipelines.cel_rewrite import rewrite_defaults
from app.pipelines.loop_budget import DataSizes, check_budget, loop_shape, measure, read_values
from app.pipelines.references import find_references

MAX_EXPRESSION_LENGTH = 4096
MAX_NESTING = 64
TEMPLATE_RE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
ROOTS = frozenset({"inputs", "steps", "trigger", "secrets", "run", "item", "index"})


class ExpressionSyntaxError(ValueError):
    """A malformed expression; ``offset`` is the 0-based character offset in the source field."""

    def __init__(self, message: str, source: str, offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.offset = offset


def _default(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


def _join(items: Any, sep: str = ",") -> str:
    if isinstance(items, str):
        return items
    return sep.join(_as_text(to_json_value(x)) for x in items)


def _text(value: Any) -> str:
    return _as_text(to_json_value(value))


def _timestamp(value: Any) -> datetime:
    """Called for what CEL's own ``timestamp(string)`` does not take: epoch seconds, datetimes."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        raise ValueError("timestamp() takes an RFC 3339 string or epoch seconds, not a boolean")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _json_decode(value: Any) -> Any:
    return _json.loads(value) if isinstance(value, str | bytes) else value


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "lower": lambda s: _text(s).lower(),
    "upper": lambda s: _text(s).upper(),
    "trim": lambda s: _text(s).strip(),
    "join": _join,
    "default": _default,
    "now": lambda: datetime.now(UTC),
    "json": _json_decode,
    # CEL's own timestamp() takes strings first; this one is called for numbers (epoch seconds).
    "timestamp": _timestamp,
}
FUNCTIONS_EXTRA = {"epoch": _timestamp}


def to_json_value(value: Any) -> Any:
    """CEL results as plain JSON values (timestamps as RFC 3339 strings, bytes as text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _refs(root: str, source: str) -> set[str]:
    return {ref.name for ref in find_references(source) if ref.root == root and ref.name is not None}


class Scope:
    """The variables an expression sees. Build one per run (or per step) and reuse it."""

    __slots__ = ("_context", "longest", "variables")

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self.variables = dict(variables)
        self._context: cel.Context | None = None
        self.longest: dict[str, DataSizes] = {}  # list sizes per variable read by macros (loop_budget)

    def context(self) -> cel.Context:
        if self._context is None:
            self._context = cel.Context(variables=self.variables, functions=FUNCTIONS)
        return self._context

    def child(self, **extra: Any) -> Scope:
        """A scope with more variables (e.g. ``item`` and ``index``)."""
        merged = dict(self.variables)
        merged.update(extra)
        return Scope(merged)


class Expression:
    """A compiled bare CEL expression."""

    __slots__ = ("_checked", "_program", "_reads", "loops", "source")

    def __init__(self, source: str) -> None:
        """Compile ``source``; a :class:`ExpressionSyntaxError` offset is into ``source`` as given."""
        lead = len(source) - len(source.lstrip())
        raw = source
        source = source.strip()
        if not source:
            raise ExpressionSyntaxError("empty expression", raw, 0)
        if len(source) > MAX_EXPRESSION_LENGTH:
            message = f"expression is {len(source)} characters long; the limit is {MAX_EXPRESSION_LENGTH}"
            raise ExpressionSyntaxError(message, raw, lead)
        depth = 0
        for i, ch in enumerate(source):
            depth += ch in "([{"
            depth -= ch in ")]}"
            if depth > MAX_NESTING:
                message = f"expression nests deeper than {MAX_NESTING} levels"
                raise ExpressionSyntaxError(message, raw, lead + i)
        self.source = source
        try:
            self._checked = cel.compile(source)
        except ValueError as exc:
            offset = lead + _cel_error_offset(str(exc), source)
            raise ExpressionSyntaxError(_clean_cel_error(str(exc)), raw, offset) from None
        self._program = self._checked
        rewritten = rewrite_defaults(source)
        if rewritten != source:
            self._program = cel.compile(rewritten)
        self.loops = loop_shape(source)  # list macros: their evaluation is budgeted (loop_budget)
        self._reads: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
        if self.loops is not None:  # the variables and steps to measure before each evaluation
            self._reads = (tuple(sorted(self.roots())), tuple(sorted(self.step_refs())))

    def evaluate(self, scope: Scope) -> Any:
        if self.loops is not None:
            self._check_loops(scope)
        try:
            return self._program.execute(scope.context())
        except KeyError as exc:
            raise ExpressionError(f"`{self.source}`: no such key {exc}") from None
        except Exception as exc:  # the CEL runtime raises several types; all are expression errors
            raise ExpressionError(f"`{self.source}`: {_clean_cel_error(str(exc))}") from None

    def _check_loops(self, scope: Scope, item: Any = None) -> None:
        """Refuse to evaluate when the variables read are too large for the macros (see loop_budget).

        ``item``: the current element when the caller gives it apart from the scope (a resolver)."""
        assert self.loops is not None
        total = measure(item)
        for name, value in read_values(*self._reads, scope.variables):
            sizes = scope.longest.get(name)
            if sizes is None:
                sizes = scope.longest[name] = measure(value)
            total = total.merge(sizes)
        check_budget(self.source, self.loops, total)

    def check_item(self, scope: Scope, item: Any) -> None:
        """The evaluation limit for an ``item`` given through a variable resolver (the engine's per-item
        evaluation); nothing to do for an expression without list macros."""
        if self.loops is not None:
            self._check_loops(scope, item)

    def evaluate_with(self, scope: Scope, **extra: Any) -> Any:
        ctx = scope.context()
        for name, value in extra.items():
            ctx.add_variable(name, value)
        return self.evaluate(scope)

    def step_refs(self) -> set[str]:
        """The ids of the steps this expression reads (``steps.X``, ``steps["X"]``)."""
        return _refs("steps", self.source)

    def input_refs(self) -> set[str]:
        return _refs("inputs", self.source)

    def secret_refs(self) -> set[str]:
        return _refs("secrets", self.source)

    def roots(self) -> set[str]:
        """The variables the expression names (list-macro variables included), as CEL sees them."""
        return set(self._checked.variables())


_PARSE_ERROR = re.compile(r"ERROR: <input>:\d+:\d+: (?:Syntax error: )?([^\n]*)")
_PARSE_MESSAGES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"mismatched input '<EOF>'"), lambda m: "the expression ends too early"),
    (re.compile(r"extraneous input '(.*)' expecting <EOF>"), lambda m: f"unexpected `{m[1]}` after the end"),
    (re.compile(r"(?:mismatched|extraneous) input '(.*)' expecting"), lambda m: f"unexpected `{m[1]}`"),
    (re.compile(r"no viable alternative at input '(.*)'"), lambda m: f"unexpected `{m[1].strip()}`"),
    (re.compile(r"token recognition error at: '[\"'](.*)'"), lambda m: "unclosed string"),
    (re.compile(r"token recognition error at: '(.*)'"), lambda m: f"unexpected character `{m[1].strip()}`"),
    (re.compile(r"missing '(.*)' at '<EOF>'"), lambda m: f"missing `{m[1]}` at the end"),
    (re.compile(r"missing '(.*)' at '(.*)'"), lambda m: f"missing `{m[1]}` before `{m[2]}`"),
    (re.compile(r"Incomplete `ExprContext` for `_\?_:_`"), lambda m: "incomplete conditional `a ? b : c`"),
    (re.compile(r"unsupported syntax '(.*)'"), lambda m: f"unsupported syntax `{m[1]}`"),
)


def _clean_cel_error(message: str) -> str:
    """A short, human message from a CEL compile or runtime error."""
    parse = _PARSE_ERROR.search(message)
    if parse is None:
        return message.split("\n", 1)[0].strip()
    text = parse.group(1).strip()
    for pattern, render in _PARSE_MESSAGES:
        match = pattern.search(text)
        if match:
            return render(match)
    return text


def _cel_error_offset(message: str, source: str = "") -> int:
    """The 0-based character offset in ``source`` of the first ``<input>:LINE:COL`` of a CEL error."""
    match = re.search(r"<input>:(\d+):(\d+)", message)
    if not match:
        return 0
    line, column = int(match.group(1)), int(match.group(2))
    offset = sum(len(text) + 1 for text in source.split("\n")[: line - 1])
    return offset + column - 1


def compile_expression(source: str) -> Expression:
    return Expression(source)


class CompiledValue:
    """A value from the pipeline file with its ``${{ }}`` templates compiled."""

    __slots__ = ("_eval", "expressions", "is_static", "raw")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.expressions: list[Expression] = []
        self._eval = self._build(raw)
        self.is_static = not self.expressions

    def _build(self, raw: Any) -> Callable[[Scope], Any]:
        if isinstance(raw, str):
            return self._build_string(raw)
        if isinstance(raw, Mapping):
            parts = [(k, self._build(v)) for k, v in raw.items()]
            return lambda scope: {k: f(scope) for k, f in parts}
        if isinstance(raw, list):
            items = [self._build(v) for v in raw]
            return lambda scope: [f(scope) for f in items]
        return lambda scope: raw

    def _build_string(self, raw: str) -> Callable[[Scope], Any]:
        if "${{" not in raw:
            return lambda scope: raw
        try:
            segments = split_template(raw)
        except UnclosedTemplate as exc:
            raise ExpressionSyntaxError(str(exc), raw, exc.offset) from None
        compiled: list[tuple[str, Expression]] = []
        for segment in segments[:-1]:
            assert segment.expression is not None
            try:
                expr = Expression(segment.expression)
            except ExpressionSyntaxError as exc:
                raise ExpressionSyntaxError(exc.message, raw, segment.expression_start + exc.offset) from None
            compiled.append((segment.text, expr))
            self.expressions.append(expr)
        tail = segments[-1].text
        if len(compiled) == 1 and not compiled[0][0].strip() and not tail.strip():
            whole = compiled[0][1]
            return lambda scope: to_json_value(whole.evaluate(scope))

        def interpolate(scope: Scope) -> str:
            out: list[str] = []
            for text, expr in compiled:
                out.append(text)
                out.append(_as_text(to_json_value(expr.evaluate(scope))))
            out.append(tail)
            return "".join(out)

        return interpolate

    def evaluate(self, scope: Scope) -> Any:
        return self._eval(scope)

    def step_refs(self) -> set[str]:
        return set().union(*(e.step_refs() for e in self.expressions)) if self.expressions else set()


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return _json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def compile_value(raw: Any) -> CompiledValue:
    return CompiledValue(raw)


def iter_expressions(values: Iterable[CompiledValue]) -> Iterable[Expression]:
    for value in values:
        yield from value.expressions
