"""Values from the pipeline file (``with``, ``to``, ``outputs``...) with their ``${{ }}`` compiled.

:class:`ValueTemplate` compiles a value once: a string that is exactly one ``${{ expr }}`` takes the
expression's native value, text around expressions interpolates them as text (:func:`as_text`),
dicts and lists are walked, the rest is constant. ``evaluate(variables)`` evaluates it once;
``bind(variables)`` gives ``fn(item, index)`` for the items of a list step, generated as one
Python function from the value's second bind (see :mod:`app.engine.evaluation` and
:mod:`app.engine.compiled_gen`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from app.engine import evaluation
from app.engine.compiled_gen import Emitter, Factory
from app.engine.compiled_ops import Fallback
from app.engine.evaluation import Evaluator, ItemFn, generate
from app.pipelines.cel_lexer import UnclosedTemplate, split_template
from app.pipelines.expressions import ExpressionSyntaxError, to_json_value

_SCALARS = frozenset({str, int, float, bool, type(None)})


def _as_json(value: Any) -> Any:
    """:func:`to_json_value`, skipping the call for the scalars it returns unchanged."""
    return value if type(value) in _SCALARS else to_json_value(value)


def _text_of(value: Any) -> str:
    """The text of an evaluated value in an interpolation: ``as_text(to_json_value(value))``."""
    kind = type(value)
    if kind is str or kind is int or kind is float:
        return str(value)
    return as_text(value if kind in _SCALARS else to_json_value(value))


class _Node:
    """A compiled piece of a value: ``evaluate`` once, or ``bind`` for many items."""

    __slots__ = ()

    def evaluators(self) -> list[Evaluator]:
        return []

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def bind(self, variables: Mapping[str, Any]) -> ItemFn:
        raise NotImplementedError

    def emit(self, emitter: Emitter) -> str:
        """Write the plain case of ``bind``'s per-item value into ``emitter``; the default: this
        node's general function."""
        return emitter.general(self)


class _Const(_Node):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        return self.value

    def bind(self, variables: Mapping[str, Any]) -> ItemFn:
        value = self.value
        return lambda item, index: value

    def emit(self, emitter: Emitter) -> str:
        return emitter.const(self.value)


def _json(value: Any, evaluator: Evaluator) -> Any:
    # Data read by a pure path is JSON already (the engine normalises every variable).
    return value if evaluator.fast else to_json_value(value)


class _Whole(_Node):
    """A field that is exactly one ``${{ expr }}``: the expression's native JSON value."""

    __slots__ = ("evaluator",)

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    def evaluators(self) -> list[Evaluator]:
        return [self.evaluator]

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        return _json(self.evaluator.evaluate(variables), self.evaluator)

    def emit(self, emitter: Emitter) -> str:
        evaluator = self.evaluator
        if not evaluator.fast and evaluator.code is None:
            return emitter.general(self)
        value = evaluator.emit(emitter)
        return value if evaluator.fast else emitter.to_json(value)

    def bind(self, variables: Mapping[str, Any]) -> ItemFn:
        evaluator = self.evaluator
        if evaluator.fast:
            return evaluator.bind(variables)
        if evaluator.code is None:
            fn = evaluator.bind(variables)
            return lambda item, index: _as_json(fn(item, index))
        # Evaluator.bind's compiled path and the JSON conversion in one function (no extra calls).
        compiled = evaluator.code.bind(variables)
        with_cel: list[ItemFn] = []

        def whole(item: Any, index: int) -> Any:
            try:
                value = compiled(item, index)
            except (Fallback, RecursionError):
                if not with_cel:
                    with_cel.append(evaluator._bind_cel(variables))
                value = with_cel[0](item, index)
            return value if type(value) in _SCALARS else to_json_value(value)

        return whole


def as_text(value: Any) -> str:
    """A JSON value as text in an interpolated string (same rules as ``app.pipelines.expressions``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class _Interpolated(_Node):
    """Text with ``${{ }}`` inside: each expression's value as text."""

    __slots__ = ("parts", "tail")

    def __init__(self, parts: list[tuple[str, Evaluator]], tail: str) -> None:
        self.parts = parts
        self.tail = tail

    def evaluators(self) -> list[Evaluator]:
        return [e for _, e in self.parts]

    def evaluate(self, variables: Mapping[str, Any]) -> str:
        out: list[str] = []
        for text, evaluator in self.parts:
            out.append(text)
            out.append(as_text(_json(evaluator.evaluate(variables), evaluator)))
        out.append(self.tail)
        return "".join(out)

    def emit(self, emitter: Emitter) -> str:
        if any(_index_member(e) or (not e.fast and e.code is None) for _, e in self.parts):
            return emitter.general(self)
        values = [evaluator.emit(emitter) for _, evaluator in self.parts]
        return emitter.interpolate([text for text, _ in self.parts] + [self.tail], values, _text_of)

    def bind(self, variables: Mapping[str, Any]) -> ItemFn:
        # Each value is followed by the text before the next one (the tail after the last).
        head = self.parts[0][0]
        following = [text for text, _ in self.parts[1:]] + [self.tail]
        pieces = [(e.bind(variables), text) for (_, e), text in zip(self.parts, following, strict=True)]
        if len(pieces) == 1:
            ((only, tail),) = pieces

            def render_one(item: Any, index: int) -> str:
                value = only(item, index)
                return head + (value if type(value) is str else _text_of(value)) + tail

            return render_one
        if len(pieces) == 2:
            (first, middle), (second, tail) = pieces

            def render_two(item: Any, index: int) -> str:
                a, b = first(item, index), second(item, index)
                a = a if type(a) is str else _text_of(a)
                return head + a + middle + (b if type(b) is str else _text_of(b)) + tail

            return render_two

        def render(item: Any, index: int) -> str:
            out = head
            for fn, text in pieces:
                value = fn(item, index)
                out += (value if type(value) is str else _text_of(value)) + text
            return out

        return render


def _evaluation(node: _Node) -> Callable[[Mapping[str, Any]], Any]:
    """``node.evaluate``; for a pure path, the path's read itself (its value is JSON as it is)."""
    if isinstance(node, _Whole) and node.evaluator.fast:
        return node.evaluator.evaluate
    return node.evaluate


class _Dict(_Node):
    __slots__ = ("evaluates", "parts")

    def __init__(self, parts: list[tuple[str, _Node]]) -> None:
        self.parts = parts
        # Each field's evaluation, a pure path's read directly (its value is JSON as it is).
        self.evaluates = [(key, _evaluation(node)) for key, node in parts]

    def evaluators(self) -> list[Evaluator]:
        return [e for _, node in self.parts for e in node.evaluators()]

    def evaluate(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        return {key: evaluate(variables) for key, evaluate in self.evaluates}

    def emit(self, emitter: Emitter) -> str:
        fields = [f"{key!r}: {node.emit(emitter)}" for key, node in self.parts]
        out = emitter.temp()
        emitter.line(f"{out} = {{{', '.join(fields)}}}")
        return out

    def bind(self, variables: Mapping[str, Any]) -> ItemFn:
        # A field that is exactly ``${{ item.name }}`` is read here when ``item`` has the key
        # (what its evaluator would do); every other case calls the field's function, in order.
        fields = [(key, _item_key(node), node.bind(variables)) for key, node in self.parts]

        def build(item: Any, index: int) -> dict[str, Any]:
            out: dict[str, Any] = {}
            plain = type(item) is dict
            for key, name, fn in fields:
                if plain and name is not None and name in item:
                    out[key] = item[name]
                else:
                    out[key] = fn(item, index)
            return out

        return build


class _List(_Node):
    __slots__ = ("nodes",)

    def __init__(self, nodes: list[_Node]) -> None:
        self.nodes = nodes

    def evaluators(self) -> list[Evaluator]:
        return [e for node in self.nodes for e in node.evaluators()]

    def evaluate(self, variables: Mapping[str, Any]) -> list[Any]:
        return [node.evaluate(variables) for node in self.nodes]

    def emit(self, emitter: Emitter) -> str:
        values = [node.emit(emitter) for node in self.nodes]
        out = emitter.temp()
        emitter.line(f"{out} = [{', '.join(values)}]")
        return out

    def bind(self, variables: Mapping[str, Any]) -> ItemFn:
        bound = [node.bind(variables) for node in self.nodes]

        def build(item: Any, index: int) -> list[Any]:
            out: list[Any] = []
            for fn in bound:
                out.append(fn(item, index))
            return out

        return build


def _index_member(evaluator: Evaluator) -> bool:
    """Whether the expression is a pure path reading a member of ``index`` (an error, per item)."""
    path = evaluator.analysis.path
    return path is not None and path[0] == "index" and bool(path[1])


def _item_key(node: _Node) -> str | None:
    """``name`` when the node is exactly ``${{ item.name }}`` (a pure path of one key), else None."""
    if isinstance(node, _Whole) and node.evaluator.analysis.path is not None:
        root, keys = node.evaluator.analysis.path
        if root == "item" and len(keys) == 1:
            return keys[0]
    return None


def _compile_string(raw: str) -> _Node:
    if "${{" not in raw:
        return _Const(raw)
    try:
        segments = split_template(raw)
    except UnclosedTemplate as exc:
        raise ExpressionSyntaxError(str(exc), raw, exc.offset) from None
    parts: list[tuple[str, Evaluator]] = []
    for segment in segments[:-1]:
        assert segment.expression is not None
        try:
            evaluator = Evaluator.compile(segment.expression)
        except ExpressionSyntaxError as exc:
            raise ExpressionSyntaxError(exc.message, raw, segment.expression_start + exc.offset) from None
        parts.append((segment.text, evaluator))
    tail = segments[-1].text
    if len(parts) == 1 and not parts[0][0].strip() and not tail.strip():
        return _Whole(parts[0][1])
    return _Interpolated(parts, tail)


def _compile_node(raw: Any) -> _Node:
    if isinstance(raw, str):
        return _compile_string(raw)
    if isinstance(raw, Mapping):
        nodes = [(str(key), _compile_node(value)) for key, value in raw.items()]
        if all(isinstance(node, _Const) for _, node in nodes):
            return _Const(raw)
        return _Dict(nodes)
    if isinstance(raw, list):
        items = [_compile_node(value) for value in raw]
        if all(isinstance(node, _Const) for node in items):
            return _Const(raw)
        return _List(items)
    return _Const(raw)


class ValueTemplate:
    """A value from the pipeline file with every ``${{ }}`` inside compiled once.

    A string that is exactly one ``${{ expr }}`` takes the expression's native value; text around
    expressions interpolates them as text; values from data are never evaluated again.
    """

    __slots__ = ("_binds", "_evaluate", "_factory", "_node", "raw")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._node = node = _compile_node(raw)
        self._evaluate = _evaluation(node)
        self._factory: Factory | None = None  # the generated per-item function (app.engine.compiled_gen)
        self._binds = 0  # binds counted up to evaluation.GENERATE_AT_BIND: then it is generated

    @property
    def is_static(self) -> bool:
        return isinstance(self._node, _Const)

    def evaluators(self) -> list[Evaluator]:
        return self._node.evaluators()

    def step_refs(self) -> set[str]:
        refs: set[str] = set()
        for evaluator in self.evaluators():
            refs |= evaluator.step_refs()
        return refs

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """The value with its expressions evaluated; raises ``ExpressionError``."""
        return self._evaluate(variables)

    def bind(self, variables: Mapping[str, Any]) -> ItemFn:
        """``fn(item, index)`` giving the value for one item (a generated function when the
        generator covers the value, see :mod:`app.engine.compiled_gen`)."""
        node = self._node
        if self._binds < evaluation.GENERATE_AT_BIND:
            self._binds += 1
            simple = isinstance(node, _Const) or (isinstance(node, _Whole) and node.evaluator.fast)
            if self._binds == evaluation.GENERATE_AT_BIND and not simple:
                self._factory = generate(node.emit)
        if self._factory is not None:
            fn = self._factory(variables, self.bind_general)
            if fn is not None:
                return fn
        return node.bind(variables)

    @property
    def generated(self) -> bool:
        """Whether ``bind`` gives a generated function (known once bound)."""
        return self._factory is not None

    def bind_general(self, variables: Mapping[str, Any]) -> ItemFn:
        """The per-item function without generated code (what a generated function falls back to)."""
        return self._node.bind(variables)
