"""``core.limit``: a slice of the items: skip ``offset`` (default 0), then keep ``count``.

Example::

    - id: page
      uses: core.limit
      with:
        items: [a, b, c, d, e]
        offset: 1
        count: 2

Output::

    ["b", "c"]
"""

from __future__ import annotations

from typing import Any

from app.engine.steps.base import CoreStep
from app.engine.steps.common import CoreCall, CoreParams, Count, Template, int_param, list_param


class Params(CoreParams):
    items: list[Any] | Template
    count: Count | Template
    offset: Count | Template = 0


async def run(call: CoreCall) -> list[Any]:
    items = list_param(call, "items") or []
    count = int_param(call, "count")
    offset = int_param(call, "offset", 0) or 0
    if count is None:
        return items[offset:]
    return items[offset : offset + count]


STEP = CoreStep(
    name="limit",
    Params=Params,
    run=run,
    description="A slice of the items: skip `offset`, keep `count`",
)
