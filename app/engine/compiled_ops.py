"""The operators of the compiled CEL subset (see :mod:`app.engine.compiled`): CEL's answer for the
plain cases, :class:`Fallback` for every other one."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from app.engine.compiled_parse import INT_MAX, INT_MIN
from app.pipelines.expressions import FUNCTIONS


class Fallback(Exception):
    """This item is not a plain case: evaluate it with CEL."""


FALLBACK = Fallback()
_UINT_END = 2**64
ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

# ----------------------------------------------------------------------------- value checks


def check_plain(value: Any) -> Any:
    """``value`` when CEL would hand it back unchanged (JSON types, ints within 64 bits signed or
    unsigned, string keys); raises :class:`Fallback` otherwise (CEL turns bigger ints into doubles)."""
    kind = type(value)
    if kind is str or kind is float or kind is bool or value is None:
        return value
    if kind is int:
        if INT_MIN <= value < _UINT_END:
            return value
        raise FALLBACK
    if kind is list:
        for element in value:
            check_plain(element)
        return value
    if kind is dict:
        for key, element in value.items():
            if type(key) is not str:
                raise FALLBACK
            check_plain(element)
        return value
    raise FALLBACK


def kind_of(value: Any) -> str:
    """n(umber), s(tring), b(oolean), z (null), l(ist), m(ap); Fallback for anything else."""
    kind = type(value)
    if kind is int:
        if INT_MIN <= value <= INT_MAX:
            return "n"
        raise FALLBACK  # unsigned or beyond: CEL's rules differ
    if kind is float:
        return "n"
    if kind is str:
        return "s"
    if kind is bool:
        return "b"
    if value is None:
        return "z"
    if kind is list:
        return "l"
    if kind is dict:
        return "m"
    raise FALLBACK


def equal(a: Any, b: Any) -> bool:
    """CEL's ``==``: false across kinds (numbers are one kind), deep for lists and maps."""
    kind = kind_of(a)
    if kind != kind_of(b):
        return False
    if kind == "l":
        if len(a) != len(b):
            return False
        for x, y in zip(a, b, strict=True):
            if not equal(x, y):
                return False
        return True
    if kind == "m":
        if len(a) != len(b):
            return False
        for key, x in a.items():
            if type(key) is not str:
                raise FALLBACK
            if key not in b:
                return False
            if not equal(x, b[key]):
                return False
        return True
    if kind == "n" and type(a) is not type(b):
        return float(a) == float(b)  # CEL compares an int with a double as doubles
    return bool(a == b)


def is_int(value: Any) -> bool:
    """Whether ``value`` is a CEL int (a bool is not); an int of data beyond 64 bits falls back."""
    if type(value) is not int:
        return False
    if INT_MIN <= value <= INT_MAX:
        return True
    raise FALLBACK


def checked(value: int) -> int:
    if INT_MIN <= value <= INT_MAX:
        return value
    raise FALLBACK  # CEL reports the overflow


# ----------------------------------------------------------------------------- operators


def _add(a: Any, b: Any) -> Any:
    kind = type(a)
    if kind is not type(b):
        raise FALLBACK
    if kind is int:
        is_int(a), is_int(b)
        return checked(a + b)
    if kind is str or kind is float or kind is list:
        return a + b
    raise FALLBACK


def _sub(a: Any, b: Any) -> Any:
    kind = type(a)
    if kind is not type(b):
        raise FALLBACK
    if kind is int:
        is_int(a), is_int(b)
        return checked(a - b)
    if kind is float:
        return a - b
    raise FALLBACK


def _mul(a: Any, b: Any) -> Any:
    kind = type(a)
    if kind is not type(b):
        raise FALLBACK
    if kind is int:
        is_int(a), is_int(b)
        return checked(a * b)
    if kind is float:
        return a * b
    raise FALLBACK


def _div(a: Any, b: Any) -> Any:
    kind = type(a)
    if kind is not type(b):
        raise FALLBACK
    if kind is int:
        is_int(a), is_int(b)
        if b == 0 or (a == INT_MIN and b == -1):
            raise FALLBACK
        quotient = abs(a) // abs(b)
        return -quotient if (a < 0) != (b < 0) else quotient
    if kind is float and b != 0.0:
        return a / b
    raise FALLBACK  # x / 0.0 is inf or NaN in CEL: let it say so


def _mod(a: Any, b: Any) -> Any:
    if type(a) is not int or type(b) is not int:
        raise FALLBACK  # doubles have no % in CEL
    is_int(a), is_int(b)
    if b == 0 or (a == INT_MIN and b == -1):
        raise FALLBACK
    remainder = abs(a) % abs(b)
    return -remainder if a < 0 else remainder


ARITH: dict[str, Callable[[Any, Any], Any]] = {"+": _add, "-": _sub, "*": _mul, "/": _div, "%": _mod}


def negate(value: Any) -> Any:
    kind = type(value)
    if kind is int and is_int(value) and value != INT_MIN:
        return -value
    if kind is float:
        return -value
    raise FALLBACK


def _order(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def ordered(a: Any, b: Any) -> bool:
        kind = kind_of(a)
        if kind not in ("n", "s", "b") or kind != kind_of(b) or a != a or b != b:
            raise FALLBACK  # nulls, lists, maps, mixed kinds and NaN: CEL's answer
        if kind == "n" and type(a) is not type(b):
            return bool(compare(float(a), float(b)))  # an int against a double: as doubles
        return bool(compare(a, b))

    return ordered


def _contained(element: Any, container: Any) -> bool:
    kind = type(container)
    if kind is list:
        for candidate in container:
            if equal(element, candidate):
                return True
        return False
    if kind is dict and type(element) is str:
        return element in container
    raise FALLBACK


RELATION: dict[str, Callable[[Any, Any], bool]] = {
    "==": equal,
    "!=": lambda a, b: not equal(a, b),
    "in": _contained,
    **{op: _order(compare) for op, compare in ORDER.items()},
}


def boolean(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise FALLBACK


def size_of(value: Any) -> int:
    kind = type(value)
    if kind is str:
        try:
            return len(value.encode("utf-8"))  # this CEL counts UTF-8 bytes
        except UnicodeEncodeError:
            raise FALLBACK from None
    if kind is list or kind is dict:
        return len(value)
    raise FALLBACK


def member(value: Any, key: Any) -> Any:
    kind = type(value)
    if kind is dict:
        if type(key) is str and key in value:
            return value[key]
    elif kind is list and is_int(key) and 0 <= key < len(value):
        return value[key]
    raise FALLBACK  # missing keys, null, scalars, other key types: CEL's error


def _string_method(method: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def call(text: Any, part: Any) -> bool:
        if type(text) is str and type(part) is str:
            return method(text, part)
        raise FALLBACK

    return call


METHODS: dict[str, Callable[[Any, Any], bool]] = {
    "contains": _string_method(lambda text, part: part in text),
    "startsWith": _string_method(str.startswith),
    "endsWith": _string_method(str.endswith),
}


def function_caller(name: str) -> Callable[..., Any]:
    function = FUNCTIONS[name]  # the very function CEL calls

    def call(*args: Any) -> Any:
        for arg in args:
            check_plain(arg)
        try:
            return check_plain(function(*args))
        except Fallback:
            raise
        except Exception:
            raise FALLBACK from None  # CEL calls it again and words the error

    return call
