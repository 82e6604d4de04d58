"""``core.count``: how many items, or how many per key: ``[{key, count}]`` in first-seen order.

Without ``by`` the output is a number. With ``by`` (evaluated once per item; keys compare as JSON
values) it is a list of ``{key, count}``.

Example::

    - id: per_lang
      uses: core.count
      with:
        items: [{lang: py}, {lang: rs}, {lang: py}]
        by: item.lang

Output::

    [{"key": "py", "count": 2}, {"key": "rs", "count": 1}]
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
from app.pipelines.expressions import to_json_value


class Params(CoreParams):
    items: list[Any] | Template
    by: BareExpression | None = None


async def run(call: CoreCall) -> int | list[dict[str, Any]]:
    items = list_param(call, "items") or []
    by = call.item_fn("by")
    if by is None:
        return len(items)
    keys = await evaluate_each(by, items, "by")
    counts: dict[Any, dict[str, Any]] = {}
    for key in keys:
        identity = hash_key(key)
        entry = counts.get(identity)
        if entry is None:
            counts[identity] = {"key": to_json_value(key), "count": 1}
        else:
            entry["count"] += 1
    return list(counts.values())


STEP = CoreStep(
    name="count",
    Params=Params,
    bare_fields=("by",),
    run=run,
    description="The number of items, or [{key, count}] per `by` key",
)
