"""What every ``core.*`` step implementation uses: the call object, parameter checks, chunked loops.

A step's ``run(call: CoreCall)`` receives its ``with`` block evaluated (``call.params``), except
for the bare fields (``where``, ``by``...) and the per-item fields (``to``, ``each``), which arrive
compiled and bound as ``fn(item, index)`` in ``call.item_fns``, keyed by their dotted path.

List steps work in chunks of :data:`CHUNK` items and yield to the event loop between chunks, so
a big list never freezes the other runs of the process and the step's timeout and cancellation
take effect while it works.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from app.engine.evaluation import ItemFn
from app.engine.paths import json_type
from app.errors import ExpressionError, MashpipeError, StepError

CHUNK = 2048
"""Items processed between two yields to the event loop."""

Template = Annotated[
    str,
    Field(pattern=r"\$\{\{", description="A `${{ expression }}` computing the value at run time"),
]
"""A string field that must hold a ``${{ }}`` (for parameters whose literal form is not a string)."""

Count = Annotated[int, Field(ge=0, description="A whole number, 0 or more")]
"""A literal count (``limit``, ``offset``); pair it with :data:`Template` for computed ones."""

BareExpression = Annotated[
    str,
    Field(min_length=1, description="A bare CEL expression (no `${{ }}`), evaluated per item"),
]


class CoreParams(BaseModel):
    """Base of every step's ``Params``: the ``with`` block as written; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(slots=True)
class CoreCall:
    """One execution of a core step (one element of a ``for_each``)."""

    step_id: str
    params: dict[str, Any]
    item_fns: Mapping[str, ItemFn] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def item_fn(self, path: str) -> ItemFn | None:
        """The bound per-item function of a bare or per-item field, None when the field is absent."""
        return self.item_fns.get(path)


def invalid(message: str) -> StepError:
    """A parameter problem found at run time (a computed value of the wrong type...)."""
    return StepError(message, code="invalid_params")


def list_param(call: CoreCall, name: str, *, required: bool = True) -> list[Any] | None:
    """A list parameter; null (e.g. the output of a skipped step) counts as an empty list."""
    value = call.params.get(name)
    if type(value) is list:
        return value
    if name not in call.params:
        if required:
            raise invalid(f"{name} is required")
        return None
    if value is None:
        return []
    if isinstance(value, tuple):
        return list(value)
    if not isinstance(value, list):
        raise invalid(f"{name} must be a list, got {json_type(value)}")
    return value


def int_param(
    call: CoreCall, name: str, default: int | None = None, *, minimum: int | None = 0
) -> int | None:
    """An integer parameter (a whole float from an expression is accepted); None when absent/null."""
    value = call.params.get(name, default)
    if type(value) is int and (minimum is None or value >= minimum):
        return value
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{name} must be an integer, got {json_type(value)}")
    if minimum is not None and value < minimum:
        raise invalid(f"{name} must be at least {minimum}, got {value}")
    return value


def str_param(call: CoreCall, name: str, default: str | None = None) -> str | None:
    """A string parameter; None when absent (or null) and no default."""
    value = call.params.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string, got {json_type(value)}")
    return value


def choice_param(call: CoreCall, name: str, choices: tuple[str, ...], default: str) -> str:
    """One of ``choices``."""
    value = call.params.get(name, default)
    if value is None:
        return default
    if value not in choices:
        expected = " or ".join(repr(c) for c in choices)
        raise invalid(f"{name} must be {expected}, got {value!r}")
    return str(value)


def _item_error(exc: MashpipeError, field_name: str, index: int) -> StepError:
    message = f"{field_name} failed on items[{index}]: {exc.message}"
    if isinstance(exc, ExpressionError):
        return ExpressionError(message, details=exc.details)
    return StepError(message, code=exc.code, details=exc.details)


async def evaluate_each(fn: ItemFn, items: list[Any], field_name: str) -> list[Any]:
    """``[fn(item, index) for each item]``, in chunks; an error names the field and the item index.

    A function with a ``many(items, start, stop)`` attribute (generated functions, pure item paths)
    computes a whole chunk in one call; others are mapped in C. When that raises, the chunk is walked
    again item by item to name the failing one (per-item functions are pure)."""
    total = len(items)
    many: Callable[[list[Any], int, int], list[Any]] | None = getattr(fn, "many", None)
    out: list[Any] = []
    for start in range(0, total, CHUNK):
        stop = min(total, start + CHUNK)
        try:
            if many is not None:
                values = many(items, start, stop)
            elif start == 0 and stop == total:
                values = list(map(fn, items, range(total)))
            else:
                values = list(map(fn, items[start:stop], range(start, stop)))
        except MashpipeError:
            values = []
        if len(values) != stop - start:  # (a StopIteration out of fn would end map early, silently)
            values = _one_by_one(fn, items, start, stop, field_name)
        if out:
            out.extend(values)
        else:
            out = values
        if stop < total:
            await asyncio.sleep(0)
    return out


def _one_by_one(fn: ItemFn, items: list[Any], start: int, stop: int, field_name: str) -> list[Any]:
    out: list[Any] = []
    append = out.append
    index = start
    try:
        for index in range(start, stop):
            append(fn(items[index], index))
    except MashpipeError as exc:
        raise _item_error(exc, field_name, index) from None
    return out


async def pause(done: int) -> None:
    """Yield to the event loop every :data:`CHUNK` units of work (call with a running counter)."""
    if done % CHUNK == 0:
        await asyncio.sleep(0)
