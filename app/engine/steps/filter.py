"""``core.filter``: keep the items for which a bare boolean expression holds.

``where`` is evaluated once per item with ``item`` and ``index`` bound; it must yield a boolean
(anything else is a step error naming the item). Order is kept.

Example::

    - id: cheap
      uses: core.filter
      with:
        items: [{name: tea, price: 3}, {name: cake, price: 12}, {name: bun, price: 2}]
        where: item.price < 10

Output::

    [{"name": "tea", "price": 3}, {"name": "bun", "price": 2}]
"""

from __future__ import annotations

from itertools import compress
from typing import Any

from app.engine.paths import json_type
from app.engine.steps.base import CoreStep
from app.engine.steps.common import (
    BareExpression,
    CoreCall,
    CoreParams,
    Template,
    evaluate_each,
    invalid,
    list_param,
)


class Params(CoreParams):
    items: list[Any] | Template
    where: BareExpression


async def run(call: CoreCall) -> list[Any]:
    items = list_param(call, "items") or []
    where = call.item_fn("where")
    assert where is not None
    verdicts = await evaluate_each(where, items, "where")
    if set(map(type, verdicts)) <= _BOOLEAN:
        return list(compress(items, verdicts))
    kept: list[Any] = []
    for index, verdict in enumerate(verdicts):
        if verdict is True:
            kept.append(items[index])
        elif verdict is not False:
            raise invalid(f"where must yield a boolean, got {json_type(verdict)} on items[{index}]")
    return kept


_BOOLEAN = frozenset({bool})


STEP = CoreStep(
    name="filter",
    Params=Params,
    bare_fields=("where",),
    run=run,
    description="Keep the items for which `where` holds",
)
