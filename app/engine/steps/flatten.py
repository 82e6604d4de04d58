"""``core.flatten``: flatten one level: list entries are spliced in, other entries kept as they are.

Example::

    - id: flat
      uses: core.flatten
      with:
        items: [[1, 2], 3, [[4], 5], []]

Output::

    [1, 2, 3, [4], 5]
"""

from __future__ import annotations

from typing import Any

from app.engine.steps.base import CoreStep
from app.engine.steps.common import CoreCall, CoreParams, Template, list_param


class Params(CoreParams):
    items: list[Any] | Template


async def run(call: CoreCall) -> list[Any]:
    items = list_param(call, "items") or []
    flat: list[Any] = []
    for entry in items:
        if isinstance(entry, list | tuple):
            flat.extend(entry)
        else:
            flat.append(entry)
    return flat


STEP = CoreStep(
    name="flatten",
    Params=Params,
    run=run,
    description="Flatten a list of lists by one level",
)
