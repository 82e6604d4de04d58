"""CEL expressions and ``${{ }}`` templates: the only place that knows about the CEL library.

* A *bare expression* (``if``, ``where``, ``by``) is compiled once with :func:`compile_expression`.
* A *value* from the pipeline file (string, list, dict, number...) is compiled once with
  :func:`compile_value`; strings holding ``${{ expr }}`` become templates. A field that is exactly
  one ``${{ expr }}`` yields the expression's native value; text around expressions interpolates.
* Evaluation takes a :class:`Scope` (the variables ``inputs``, ``steps``, ``trigger``, ``secrets``,
  ``run``, and ``item``/``index`` per element). Values that come from data are never evaluated again.

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
    return sep.join("" if x is None else str(x) for x in items)


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _json_decode(value: Any) -> Any:
    return _json.loads(value) if isinstance(value, str | bytes) else value


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
    "trim": lambda s: str(s).strip(),
    "join": _join,
    "default": _default,
    "now": lambda: datetime.now(UTC),
    "json": _json_decode,
}
# CEL has its own timestamp() for strings; ours also accepts numbers (epoch seconds).
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


def _root_names(source: str) -> set[str]:
    return set(re.findall(r"(?<![\w.\"'])([A-Za-z_]\w*)\s*(?=[.\[])", source)) | set(
        re.findall(r"(?<![\w.\"'])([A-Za-z_]\w*)(?![\w(])", source)
    )


STEP_REF_RE = re.compile(r"(?<![\w.])steps\s*\.\s*([A-Za-z_]\w*)|(?<![\w.])steps\s*\[\s*[\"']([^\"']+)[\"']\s*\]")
INPUT_REF_RE = re.compile(r"(?<![\w.])inputs\s*\.\s*([A-Za-z_]\w*)|(?<![\w.])inputs\s*\[\s*[\"']([^\"']+)[\"']\s*\]")
SECRET_REF_RE = re.compile(r"(?<![\w.])secrets\s*\.\s*([A-Za-z_]\w*)|(?<![\w.])secrets\s*\[\s*[\"']([^\"']+)[\"']\s*\]")


def _refs(pattern: re.Pattern[str], source: str) -> set[str]:
    return {a or b for a, b in pattern.findall(_strip_strings(source))}


def _strip_strings(source: str) -> str:
    """The source with string literals blanked, so that ``"steps.x"`` in quotes is no reference."""
    return re.sub(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'", lambda m: '""' if m.group(0)[0] == '"' else "''", source)


class Scope:
    """The variables an expression sees. Build one per run (or per step) and reuse it."""

    __slots__ = ("_context", "variables")

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self.variables = dict(variables)
        self._context: cel.Context | None = None

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

    __slots__ = ("_program", "source")

    def __init__(self, source: str) -> None:
        source = source.strip()
        if not source:
            raise ExpressionSyntaxError("empty expression", source)
        if len(source) > MAX_EXPRESSION_LENGTH:
            raise ExpressionSyntaxError(
                f"expression is {len(source)} characters long; the limit is {MAX_EXPRESSION_LENGTH}", source
            )
        depth = 0
        for ch in source:
            depth += ch in "([{"
            depth -= ch in ")]}"
            if depth > MAX_NESTING:
                raise ExpressionSyntaxError(f"expression nests deeper than {MAX_NESTING} levels", source)
        self.source = source
        try:
            self._program = cel.compile(source)
        except ValueError as exc:
            raise ExpressionSyntaxError(_clean_cel_error(str(exc)), source, _cel_error_offset(str(exc))) from None

    def evaluate(self, scope: Scope) -> Any:
        try:
            return self._program.execute(scope.context())
        except KeyError as exc:
            raise ExpressionError(f"`{self.source}`: no such key {exc}") from None
        except Exception as exc:  # the CEL runtime raises several types; all are expression errors
            raise ExpressionError(f"`{self.source}`: {_clean_cel_error(str(exc))}") from None

    def evaluate_with(self, scope: Scope, **extra: Any) -> Any:
        ctx = scope.context()
        for name, value in extra.items():
            ctx.add_variable(name, value)
        return self.evaluate(scope)

    def step_refs(self) -> set[str]:
        return _refs(STEP_REF_RE, self.source)

    def input_refs(self) -> set[str]:
        return _refs(INPUT_REF_RE, self.source)

    def secret_refs(self) -> set[str]:
        return _refs(SECRET_REF_RE, self.source)

    def roots(self) -> set[str]:
        return set(self._program.variables())


def _clean_cel_error(message: str) -> str:
    first = message.split("\n", 1)[0]
    return first.replace("Failed to parse expression", "cannot parse").strip()


def _cel_error_offset(message: str) -> int:
    match = re.search(r"<input>:(\d+):(\d+)", message)
    return int(match.group(2)) - 1 if match else 0


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
        matches = list(TEMPLATE_RE.finditer(raw))
        if not matches:
            if "${{" in raw:
                raise ExpressionSyntaxError("unclosed `${{`: close it with `}}`", raw, raw.index("${{"))
            return lambda scope: raw
        compiled: list[tuple[str, Expression]] = []
        last = 0
        for match in matches:
            try:
                expr = Expression(match.group(1))
            except ExpressionSyntaxError as exc:
                raise ExpressionSyntaxError(exc.message, raw, match.start(1) + exc.offset) from None
            compiled.append((raw[last : match.start()], expr))
            self.expressions.append(expr)
            last = match.end()
        tail = raw[last:]
        if len(compiled) == 1 and not compiled[0][0] and not tail.strip() and not compiled[0][0].strip():
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
