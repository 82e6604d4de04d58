"""``core.merge``: the concatenation of several lists, in order.

``sources`` is a list whose entries are lists (usually ``${{ steps.X.output }}``), or one
expression yielding such a list. A null source (the output of a skipped step, or of a step that
failed with ``on_error: continue``) counts as empty, so one dead feed does not stop the mashup;
any other non-list source is an error.

Example::

    - id: all
      uses: core.merge
      with:
        sources:
          - [a, b]
          - null
          - [c]

Output::

    ["a", "b", "c"]
"""

from __future__ import annotations

from typing import Any

from app.engine.paths import json_type
from app.engine.steps.base import CoreStep
from app.engine.steps.common import CoreCall, CoreParams, Template, invalid, list_param


class Params(CoreParams):
    sources: list[Any] | Template


async def run(call: CoreCall) -> list[Any]:
    sources = list_param(call, "sources") or []
    merged: list[Any] = []
    for index, source in enumerate(sources):
        if source is None:
            continue
        if not isinstance(source, list | tuple):
            raise invalid(f"sources[{index}] must be a list, got {json_type(source)}")
        merged.extend(source)
    return merged


STEP = CoreStep(
    name="merge",
    Params=Params,
    run=run,
    description="Concatenate lists, in order (null sources count as empty)",
)
