"""Plain JSON values, and the declared output types that keep them exactly as they are.

An operation's output is checked against its declared type and dumped to JSON values by a pydantic
``TypeAdapter`` (``app.sdk.invoke``). When the declared type accepts any JSON value (``Any``,
``JsonValue``, ``dict[str, Any]``, ``list[Any]``...) and the value already is plain JSON (what
``ctx.request_json`` decodes: dicts with string keys, lists, strings, integers, finite floats,
booleans, None), validating and dumping it gives an equal value: :func:`passes_unchanged` says when
that shortcut is exact, and anything else (a tuple, a datetime, a NaN, an int subclass, a typed
model...) goes through the adapter as before.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import JsonValue

Shape = Literal["any", "dict", "list"]

# Declared types whose validation accepts every plain JSON value of the given shape and whose JSON dump
# of such a value is an equal value.
_ANY_JSON: frozenset[Any] = frozenset({Any, JsonValue})


def _is_any_json(annotation: Any) -> bool:
    try:
        return annotation in _ANY_JSON
    except TypeError:  # an unhashable annotation: not one of ours
        return False


@functools.lru_cache(maxsize=512)
def _shape_of(annotation: Any) -> Shape | None:
    if _is_any_json(annotation):
        return "any"
    origin = getattr(annotation, "__origin__", None)
    args: tuple[Any, ...] = tuple(getattr(annotation, "__args__", ()))
    if origin is dict and len(args) == 2 and args[0] is str and _is_any_json(args[1]):
        return "dict"
    if origin is list and len(args) == 1 and _is_any_json(args[0]):
        return "list"
    if origin is list and len(args) == 1 and _shape_of(args[0]) == "dict":
        return "list"  # list[dict[str, Any]]: checked item by item below
    return None


def output_shape(annotation: Any) -> Shape | None:
    """``"any"``, ``"dict"`` or ``"list"`` when ``annotation`` keeps plain JSON of that shape unchanged."""
    try:
        return _shape_of(annotation)
    except TypeError:  # unhashable
        return None


def is_plain_json(value: Any) -> bool:
    """Whether ``value`` is made only of dicts (string keys), lists, str, int, finite float, bool, None.

    Exact types only: a subclass (an ``IntEnum``, a ``str`` enum, an ``OrderedDict``) is not plain.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return bool(value - value == 0.0)  # False for inf and nan
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not is_plain_json(item):
                return False
        return True
    if kind is list:
        for item in value:
            if not is_plain_json(item):
                return False
        return True
    return False


def passes_unchanged(annotation: Any, value: Any) -> bool:
    """Whether ``value`` validated against ``annotation`` and dumped as JSON would equal ``value`` itself."""
    shape = output_shape(annotation)
    if shape is None:
        return False
    if shape == "dict" and type(value) is not dict:
        return False
    if shape == "list":
        if type(value) is not list:
            return False
        inner = output_shape(annotation.__args__[0])
        if inner == "dict" and any(type(item) is not dict for item in value):
            return False
    try:
        return is_plain_json(value)
    except RecursionError:  # nested deeper than Python recurses: the adapter decides
        return False
