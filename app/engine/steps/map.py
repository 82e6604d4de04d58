"""``core.map``: one value per item, built from ``to``.

``to`` is any value; every ``${{ }}`` inside it is evaluated per item with ``item`` and ``index``
bound. A ``to`` without expressions gives the same value for every item.

Example::

    - id: shaped
      uses: core.map
      with:
        items: [{title: Tea, points: 3}, {title: Cake, points: 12}]
        to: {name: "${{ lower(item.title) }}", score: "${{ item.points }}", rank: "#${{ index + 1 }}"}

Output::

    [{"name": "tea", "score": 3, "rank": "#1"}, {"name": "cake", "score": 12, "rank": "#2"}]
"""

from __future__ import annotations

from typing import Any

from app.engine.steps.base import CoreStep
from app.engine.steps.common import CoreCall, CoreParams, Template, evaluate_each, list_param


class Params(CoreParams):
    items: list[Any] | Template
    to: Any


async def run(call: CoreCall) -> list[Any]:
    items = list_param(call, "items") or []
    to = call.item_fn("to")
    assert to is not None
    return await evaluate_each(to, items, "to")


STEP = CoreStep(
    name="map",
    Params=Params,
    per_item_fields=("to",),
    run=run,
    description="One value per item, built from `to`",
)
