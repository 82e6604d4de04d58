"""``core.regex``: replace the matches of ``pattern`` in text, with RE2 (linear time, no backtracking).

Input: ``value`` (a string), or ``items``: a list of strings, or with ``field`` a list of objects
whose ``field`` is rewritten (objects without it, or with null, are kept; other types are an
error). ``replace`` (default: the empty string, i.e. delete) may use groups: ``\\1``, ``\\g<name>``.
Output: the rewritten string (null stays null), or the rewritten list (objects are copied, never
changed in place).

Why RE2: a pattern is user input; Python's ``re`` backtracks and a pattern such as ``(a+)+$`` can
keep a worker busy for ever. RE2 runs in time linear in the text, like CEL's ``matches()``; its
syntax is Python's minus backreferences and look-around. Patterns are limited to
:data:`MAX_PATTERN_LENGTH` characters and RE2's compiled program to :data:`MAX_PROGRAM_MEMORY`
bytes; lists are processed in chunks, so the step timeout and cancellation still apply.

Example::

    - id: tidy
      uses: core.regex
      with:
        items: [{title: "Show HN:  Mashpipe"}, {title: "Ask HN: why?"}, {id: 3}]
        field: title
        pattern: '^(Show|Ask) HN:\\s+'
        replace: '[\\1] '

Output::

    [{"title": "[Show] Mashpipe"}, {"title": "[Ask] why?"}, {"id": 3}]
"""

from __future__ import annotations

from typing import Any

import re2
from pydantic import Field, field_validator, model_validator

from app.engine.paths import json_type
from app.engine.steps.base import CoreStep
from app.engine.steps.common import (
    CoreCall,
    CoreParams,
    Template,
    invalid,
    list_param,
    pause,
    str_param,
)

MAX_PATTERN_LENGTH = 1000
MAX_PROGRAM_MEMORY = 8 << 20


class Params(CoreParams):
    value: str | None = None
    items: list[Any] | Template | None = None
    field: str | None = Field(default=None, min_length=1)
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN_LENGTH)
    replace: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        if "${{" not in pattern:
            compile_pattern(pattern)
        return pattern

    @model_validator(mode="after")
    def _shape(self) -> Params:
        if (self.value is None) == (self.items is None):
            raise ValueError("give either `value` or `items`")
        if self.field is not None and self.items is None:
            raise ValueError("`field` goes with `items`")
        return self


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print parse errors on stderr
    options.max_mem = MAX_PROGRAM_MEMORY
    return options


def compile_pattern(pattern: str) -> Any:
    """Compile an RE2 pattern; raises ``ValueError`` with a readable message."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"pattern is {len(pattern)} characters long; the limit is {MAX_PATTERN_LENGTH}")
    try:
        return re2.compile(pattern, options=_options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"invalid pattern {pattern!r}: {reason}") from None


async def run(call: CoreCall) -> Any:
    pattern = str_param(call, "pattern")
    if not pattern:
        raise invalid("pattern must not be empty")
    replace = str_param(call, "replace", "") or ""
    try:
        regex = compile_pattern(pattern)
    except ValueError as exc:
        raise invalid(str(exc)) from None

    def sub(text: str) -> str:
        try:
            return str(regex.sub(replace, text))
        except (re2.error, IndexError, ValueError) as exc:
            raise invalid(f"cannot apply replace {replace!r}: {exc}") from None

    if call.params.get("items") is None and "value" in call.params:
        value = call.params["value"]
        if value is None:
            return None
        if not isinstance(value, str):
            raise invalid(f"value must be a string, got {json_type(value)}")
        return sub(value)
    items = list_param(call, "items") or []
    field = str_param(call, "field")
    out: list[Any] = []
    for index, item in enumerate(items):
        if field is None:
            if not isinstance(item, str):
                raise invalid(f"items[{index}] must be a string (or give `field`), got {json_type(item)}")
            out.append(sub(item))
        elif not isinstance(item, dict):
            raise invalid(f"items[{index}] must be an object with `{field}`, got {json_type(item)}")
        else:
            text = item.get(field)
            if text is None:
                out.append(item)
            elif isinstance(text, str):
                out.append({**item, field: sub(text)})
            else:
                raise invalid(f"items[{index}].{field} must be a string, got {json_type(text)}")
        await pause(index + 1)
    return out


STEP = CoreStep(
    name="regex",
    Params=Params,
    run=run,
    description="Replace pattern matches (RE2) in `value`, or in `items` (optionally their `field`)",
)
