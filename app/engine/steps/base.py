"""What every built-in ``core.*`` step declares. One module per step in this package.

Validation (``app.pipelines``) reads ``Params`` and the field lists to check a step's ``with``;
the engine calls ``run``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True, slots=True)
class CoreStep:
    name: str  # "filter" for core.filter
    Params: type[BaseModel]  # the shape of `with` as written in the file (expressions still unevaluated)
    # dotted paths in `with` holding bare CEL, evaluated per item: where, by
    bare_fields: tuple[str, ...] = ()
    # dotted paths whose ${{ }} is evaluated per item (item/index bound)
    per_item_fields: tuple[str, ...] = ()
    run: Callable[..., Awaitable[Any]] | None = None  # set by the engine's implementation
    description: str = ""
