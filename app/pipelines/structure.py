"""The shape of a pipeline file: :class:`PipelineSpec` validation errors as located, human problems.

Pydantic reports a ``loc`` per error; it is mapped back to the loaded document (union members
such as ``str``/``list[any]`` that are not keys are dropped, alternatives of one union are merged
into one problem) and given a message a pipeline author understands, with a stable code:

* ``unknown_key`` (with "did you mean"), ``missing`` (at the mapping that lacks the key),
* ``type`` ("expected a list, got text"), ``invalid_value`` (choices, patterns, ranges, durations).
"""

from __future__ import annotations

import difflib
import json
import types
from collections.abc import Callable
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from app.pipelines.inputs import describe
from app.pipelines.loader import LoadedYaml
from app.pipelines.problems import Path, Problem
from app.pipelines.spec import PipelineSpec

_KINDS = {
    "string": "text",
    "str": "text",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "dict": "a mapping",
    "model": "a mapping",
    "list": "a list",
    "literal": "one of the allowed values",
}
_PATTERN_MESSAGES = {
    "name": "`name` must be a slug: lowercase letters, digits and hyphens, starting with a letter or a digit,"
    " at most 63 characters",
    "id": "a step id is lowercase letters, digits and underscores, not starting with a digit",
    "uses": "`uses` takes CONNECTOR.OPERATION (like http.request) or core.STEP (like core.filter)",
}
_RANGE = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "greater than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside ``Optional``/``Union``/``Annotated``."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return [t for arg in get_args(annotation) for t in _unwrap(arg)]
    if origin is not None and hasattr(annotation, "__metadata__"):
        return _unwrap(get_args(annotation)[0])
    return [annotation]


def _model_at(path: Path) -> type[BaseModel] | None:
    """The spec model describing the mapping at ``path`` (for the keys it allows)."""
    current: Any = PipelineSpec
    for part in path:
        candidates = _unwrap(current)
        nxt: Any = None
        for candidate in candidates:
            origin = get_origin(candidate)
            if isinstance(candidate, type) and issubclass(candidate, BaseModel) and isinstance(part, str):
                for name, info in candidate.model_fields.items():
                    if part in (name, info.alias):
                        nxt = info.annotation
            elif origin is list and isinstance(part, int):
                nxt = get_args(candidate)[0]
            elif origin is dict and isinstance(part, str):
                nxt = get_args(candidate)[1]
        if nxt is None:
            return None
        current = nxt
    for candidate in _unwrap(current):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def allowed_keys(model: type[BaseModel]) -> list[str]:
    """The keys a spec model takes, as written in files (aliases such as ``with``/``if``)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def _real_path(data: Any, loc: tuple[int | str, ...]) -> tuple[Path, bool]:
    """The part of ``loc`` that exists in ``data``, and whether all of it exists."""
    path: list[int | str] = []
    for part in loc:
        if isinstance(data, dict) and isinstance(part, str) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return tuple(path), False
        path.append(part)
    return tuple(path), True


def _kind_of(error_type: str) -> str | None:
    base = error_type.split("_", 1)[0]
    return _KINDS.get(base)


def _union_kind(error: ErrorDetails) -> str | None:
    """What one member of a union expected ("a list", "'asc' or 'desc'"), None for a value error."""
    ctx = error.get("ctx") or {}
    if error["type"] == "string_pattern_mismatch":
        return "a `${{ expression }}`" if "$" in str(ctx.get("pattern", "")) else None
    if error["type"] == "literal_error":
        return str(ctx.get("expected"))
    return _kind_of(error["type"])


def _subject(path: Path) -> str:
    """How to name the value at ``path`` in a message: `field`, or "each item of `list`"."""
    field = next((p for p in reversed(path) if isinstance(p, str)), None)
    if field is None:
        return "the value"
    return f"each item of `{field}`" if isinstance(path[-1], int) else f"`{field}`"


def _shown(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def error_message(error: ErrorDetails, path: Path) -> tuple[str, str]:
    """(code, message) for one pydantic error at ``path``."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    field = next((p for p in reversed(path) if isinstance(p, str)), "value")
    if kind == "literal_error":
        return "invalid_value", f"`{field}` must be {ctx.get('expected')}; got {_shown(error['input'])}"
    if kind == "string_pattern_mismatch":
        return "invalid_value", _PATTERN_MESSAGES.get(field, f"`{field}` must match {ctx.get('pattern')}")
    if kind in _RANGE:
        key, words = _RANGE[kind]
        return "invalid_value", f"`{field}` must be {words} {ctx.get(key)}; got {_shown(error['input'])}"
    if kind in ("too_short", "too_long", "string_too_long", "string_too_short"):
        if path == ("steps",):
            return "invalid_value", "a pipeline needs at least one step"
        return "invalid_value", f"`{field}`: {error['msg'][0].lower()}{error['msg'][1:]}"
    if kind == "value_error":
        error_obj = ctx.get("error")
        text = str(error_obj) if error_obj else error["msg"]
        return "invalid_value", f"`{field}`: {text}" if path else text
    expected = _kind_of(kind)
    if expected is not None:
        return "type", f"{_subject(path)} must be {expected}, not {describe(error['input'])}"
    return "invalid_value", f"`{field}`: {error['msg']}"


def _unknown_key(doc: LoadedYaml, path: Path) -> Problem:
    key = str(path[-1])
    model = _model_at(path[:-1])
    message = f"unknown key `{key}`"
    if model is not None:
        allowed = allowed_keys(model)
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        message += f"; did you mean `{close[0]}`?" if close else f"; expected one of: {', '.join(allowed)}"
    return doc.problem(path, "unknown_key", message, key=True)


def errors_to_problems(
    doc: LoadedYaml,
    data: Any,
    errors: list[ErrorDetails],
    *,
    base: Path = (),
    code: str | None = None,
    unknown_key: Callable[[Path], Problem] | None = None,
    ignore_missing: frozenset[str] = frozenset(),
) -> list[Problem]:
    """Pydantic ``errors`` about ``data`` (found at ``base`` in the document) as located problems.

    ``code`` replaces every code (e.g. ``invalid_with``); ``unknown_key`` builds the problem of an
    extra key (None: extra keys are not reported here); a missing top-level key named in
    ``ignore_missing`` is not reported (its value is computed at run time).
    """
    problems: list[Problem] = []
    unions: dict[Path, list[ErrorDetails]] = {}
    for error in errors:
        loc = tuple(error["loc"])
        path, complete = _real_path(data, loc)
        if error["type"] == "missing":
            missing = loc[len(path)] if len(loc) > len(path) else loc[-1]
            if not path and missing in ignore_missing:
                continue
            message = f"`{missing}` is required"
            problems.append(doc.problem((*base, *path, missing), code or "missing", message))
        elif error["type"] == "extra_forbidden":
            if unknown_key is not None:
                problems.append(unknown_key((*base, *path)))
        elif not complete and len(loc) == len(path) + 1:
            unions.setdefault(path, []).append(error)  # one member of a union (`int | Template`)
        else:
            found, message = error_message(error, path)
            problems.append(doc.problem((*base, *path), code or found, message))
    for path, members in unions.items():
        problems.extend(_union_problems(doc, data, base, path, members, code))
    return problems


def _union_problems(
    doc: LoadedYaml, data: Any, base: Path, path: Path, members: list[ErrorDetails], code: str | None
) -> list[Problem]:
    """One problem for a value no member of a union took.

    A member that took the type but refused the value (a range, a duration) says best what is
    wrong; otherwise the expected kinds are listed: "must be a list or a `${{ expression }}`".
    """
    kinds = [_union_kind(error) for error in members]
    refused = [error for error, kind in zip(members, kinds, strict=True) if kind is None]
    if refused:
        found = [error_message(error, path) for error in refused]
        return [doc.problem((*base, *path), code or c, message) for c, message in dict.fromkeys(found)]
    value = _value_at(data, path)
    words = " or ".join(dict.fromkeys(k for k in kinds if k))
    if set(kinds) == {"text", "an integer", "a number"}:
        words = "a duration (like 500ms, 10s, 5m) or a number of seconds"
    got = f"; got {_shown(value)}" if any(e["type"] == "literal_error" for e in members) else ""
    message = f"{_subject(path)} must be {words}{got or f', not {describe(value)}'}"
    return [doc.problem((*base, *path), code or "type", message)]


def structure_problems(doc: LoadedYaml) -> tuple[PipelineSpec | None, list[Problem]]:
    """The validated spec (None when the shape is wrong) and the problems of its shape."""
    data = doc.data
    if data is None:
        message = "the file is empty; a pipeline needs at least `version`, `name` and `steps`"
        return None, [doc.problem((), "empty", message)]
    if not isinstance(data, dict):
        message = f"a pipeline is a mapping of keys (version, name, steps...), not {describe(data)}"
        return None, [doc.problem((), "type", message)]
    try:
        return PipelineSpec.model_validate(data), []
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    return None, errors_to_problems(doc, data, errors, unknown_key=lambda path: _unknown_key(doc, path))


def _value_at(data: Any, path: Path) -> Any:
    for part in path:
        data = data[part]
    return data
