"""``core.set``: a value, computed once and named by the step id (its output).

Example::

    - id: settings
      uses: core.set
      with:
        value: {greeting: "Hello ${{ 'world' }}", sizes: [1, 2, 3], total: "${{ 1 + 2 + 3 }}"}

Output::

    {"greeting": "Hello world", "sizes": [1, 2, 3], "total": 6}
"""

from __future__ import annotations

from typing import Any

from app.engine.steps.base import CoreStep
from app.engine.steps.common import CoreCall, CoreParams


class Params(CoreParams):
    value: Any


async def run(call: CoreCall) -> Any:
    return call.params.get("value")


STEP = CoreStep(
    name="set",
    Params=Params,
    run=run,
    description="Compute a value and name it (the step's output)",
)
