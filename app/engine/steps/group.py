"""``core.group``: items grouped by a key, ``[{key, items}]`` in first-seen order.

``by`` is evaluated once per item; keys compare as JSON values (``1`` equals ``1.0``). Items keep
their order inside each group.

Example::

    - id: by_lang
      uses: core.group
      with:
        items: [{n: a, lang: py}, {n: b, lang: rs}, {n: c, lang: py}]
        by: item.lang

Output::

    [{"key": "py", "items": [{"n": "a", "lang": "py"}, {"n": "c", "lang": "py"}]},
     {"key": "rs", "items": [{"n": "b", "lang": "rs"}]}]
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
    by: BareExpression


async def run(call: CoreCall) -> list[dict[str, Any]]:
    items = list_param(call, "items") or []
    by = call.item_fn("by")
    assert by is not None
    keys = await evaluate_each(by, items, "by")
    groups: dict[Any, dict[str, Any]] = {}
    for item, key in zip(items, keys, strict=True):
        identity = hash_key(key)
        group = groups.get(identity)
        if group is None:
            group = groups[identity] = {"key": to_json_value(key), "items": []}
        group["items"].append(item)
    return list(groups.values())


STEP = CoreStep(
    name="group",
    Params=Params,
    bare_fields=("by",),
    run=run,
    description="Group items by `by`: [{key, items}] in first-seen order",
)
