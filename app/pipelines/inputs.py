"""Check and coerce the inputs given to a run against the pipeline's ``inputs`` declarations.

>>> spec = PipelineSpec.model_validate({"version": 1, "name": "p", "steps": [{"id": "a", "uses": "core.set"}],
...     "inputs": {"limit": {"type": "integer", "default": 10, "maximum": 50}, "tags": {"type": "array"}}})
>>> coerce_inputs(spec, {"limit": "42", "tags": '["a"]'}, from_strings=True)
{'limit': 42, 'tags': ['a']}

Rules, per declared type (``bool`` is never a number):

* ``string``: text.
* ``integer``: an integer, a whole float (``3.0``), or text holding an integer (``"42"``).
* ``number``: an integer or a float, or text holding one (``"2.5"``); infinity and NaN refused.
* ``boolean``: ``true``/``false``, or the text ``"true"``/``"false"`` (any case); from a query
  string also ``1``/``0``, ``yes``/``no``, ``on``/``off``.
* ``array`` / ``object``: a list / a mapping; from a query string also its JSON text.

Then ``enum`` and ``minimum``/``maximum`` (numbers only). A missing input takes its ``default``
(or null when it has none); a missing ``required`` input and an unknown input are errors. Every
problem is reported at once in :class:`app.errors.Unprocessable` ``details``.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from app.errors import Unprocessable
from app.pipelines.spec import InputSpec, PipelineSpec

_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")  # no nested repeats: linear
_TRUE = {"true"}
_FALSE = {"false"}
_QUERY_TRUE = {"true", "1", "yes", "on"}
_QUERY_FALSE = {"false", "0", "no", "off"}
_TYPE_WORDS = {
    "string": "text",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
}


def describe(value: Any) -> str:
    """What kind of JSON value ``value`` is, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _coerce_type(kind: str, value: Any, from_strings: bool, strict: bool) -> Any:
    """``value`` as ``kind``, or ValueError with a message."""
    expected = f"expected {_TYPE_WORDS[kind]}, got {describe(value)}"
    text = value.strip() if isinstance(value, str) and not strict else None
    if kind == "string":
        if isinstance(value, str):
            return value
    elif kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if text is not None and _INTEGER.match(text):
            return int(text)
        if text is not None:
            raise ValueError(f"expected an integer, got {value!r}")
    elif kind == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("expected a finite number")
            return value
        if text is not None and _NUMBER.match(text):
            if _INTEGER.match(text):
                return int(text)
            number = float(text)
            if math.isfinite(number):
                return number
            raise ValueError("expected a finite number")
        if text is not None:
            raise ValueError(f"expected a number, got {value!r}")
    elif kind == "boolean":
        if isinstance(value, bool):
            return value
        if text is not None:
            lowered = text.lower()
            if lowered in (_QUERY_TRUE if from_strings else _TRUE):
                return True
            if lowered in (_QUERY_FALSE if from_strings else _FALSE):
                return False
            raise ValueError(f"expected true or false, got {value!r}")
    elif kind in ("array", "object"):
        wanted: type = list if kind == "array" else dict
        if isinstance(value, wanted):
            return value
        if isinstance(value, str) and from_strings and not strict:
            try:
                decoded = json.loads(value)
            except ValueError:
                raise ValueError(f"expected {_TYPE_WORDS[kind]} as JSON text, got {value!r}") from None
            if isinstance(decoded, wanted):
                return decoded
            raise ValueError(f"expected {_TYPE_WORDS[kind]} as JSON text, got {describe(decoded)}")
    raise ValueError(expected)


def coerce_value(spec: InputSpec, value: Any, *, from_strings: bool = False, strict: bool = False) -> Any:
    """``value`` checked and coerced for an input declared by ``spec``; ValueError with a message.

    ``strict`` turns text-to-number and text-to-boolean coercion off (for values written in the
    pipeline file itself, such as defaults).
    """
    coerced = _coerce_type(spec.type, value, from_strings, strict)
    if spec.enum is not None and coerced not in spec.enum:
        choices = ", ".join(json.dumps(choice, ensure_ascii=False) for choice in spec.enum)
        raise ValueError(f"must be one of {choices}; got {json.dumps(coerced, ensure_ascii=False)}")
    if spec.type in ("integer", "number"):
        if spec.minimum is not None and coerced < spec.minimum:
            raise ValueError(f"must be at least {_number(spec.minimum)}; got {coerced}")
        if spec.maximum is not None and coerced > spec.maximum:
            raise ValueError(f"must be at most {_number(spec.maximum)}; got {coerced}")
    return coerced


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def input_problems(
    declared: Mapping[str, InputSpec], given: Mapping[str, Any], *, from_strings: bool = False
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The coerced inputs and the list of ``{"input", "message"}`` problems (empty when all is well)."""
    result: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    for name in given:
        if name not in declared:
            message = f"unknown input `{name}`"
            close = difflib.get_close_matches(name, list(declared), n=1)
            if close:
                message += f"; did you mean `{close[0]}`?"
            elif declared:
                message += f"; this pipeline takes: {', '.join(sorted(declared))}"
            else:
                message += "; this pipeline takes no inputs"
            problems.append({"input": name, "message": message})
    for name, spec in declared.items():
        value = given.get(name)
        if value is None:
            if spec.required and spec.default is None:
                problems.append({"input": name, "message": f"`{name}` is required"})
                continue
            if spec.default is None:
                result[name] = None
                continue
            value = copy.deepcopy(spec.default)
        try:
            result[name] = coerce_value(spec, value, from_strings=from_strings)
        except ValueError as exc:
            problems.append({"input": name, "message": f"`{name}`: {exc}"})
    return result, problems


def coerce_inputs(
    spec: PipelineSpec, given: Mapping[str, Any], *, from_strings: bool = False
) -> dict[str, Any]:
    """The inputs of a run: defaults applied, values checked and coerced; raises ``Unprocessable``.

    ``from_strings`` is for values that can only be text (query strings, ``--input k=v``): then
    ``1``/``yes``/``on`` are booleans too and arrays/objects are read as JSON text.
    """
    result, problems = input_problems(spec.inputs, given, from_strings=from_strings)
    if problems:
        count = len(problems)
        summary = problems[0]["message"] if count == 1 else f"{count} problems with the inputs"
        raise Unprocessable(f"invalid inputs: {summary}", details=problems)
    return result
