"""``core.unique``: the first item of each key, order kept.

``by`` (default: the whole item) is evaluated once per item. Keys are compared as JSON values:
``1`` and ``1.0`` are the same key, ``"1"`` and ``true`` are other keys.

Example::

    - id: dedupe
      uses: core.unique
      with:
        items: [{id: 1, v: a}, {id: 2, v: b}, {id: 1, v: c}]
        by: item.id

Output::

    [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
"""

from __future__ import annotations

from typing import Any

from app.engine.steps.base import CoreStep
from app.engine.steps.common import (
    BareExpression,
    CoreCall,
    CoreParams,
    Template,
    evaluate_each,
    list_param,
)
from app.engine.steps.keys import hash_key


class Params(CoreParams):
    items: list[Any] | Template
    by: BareExpression | None = None


async def run(call: CoreCall) -> list[Any]:
    items = list_param(call, "items") or []
    by = call.item_fn("by")
    keys = await evaluate_each(by, items, "by") if by is not None else items
    seen: set[Any] = set()
    kept: list[Any] = []
    for index, key in enumerate(keys):
        identity = hash_key(key)
        if identity not in seen:
            seen.add(identity)
            kept.append(items[index])
    return kept


STEP = CoreStep(
    name="unique",
    Params=Params,
    bare_fields=("by",),
    run=run,
    description="The first item of each key (`by`, default the whole item), order kept",
)
