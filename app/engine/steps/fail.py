"""``core.fail``: fail the step on purpose with ``message`` (usually guarded by ``if``).

The step ends ``failed`` with error code ``step_failed`` and the message; with the default
``on_error: fail`` the run fails too.

Example::

    - id: guard
      uses: core.fail
      if: 1 > 2
      with:
        message: "never: the condition is false"

Output::

    null
"""

from __future__ import annotations

from typing import NoReturn

from pydantic import Field

from app.engine.steps.base import CoreStep
from app.engine.steps.common import CoreCall, CoreParams
from app.engine.values import as_text
from app.errors import StepError


class Params(CoreParams):
    message: str = Field(min_length=1)


async def run(call: CoreCall) -> NoReturn:
    message = as_text(call.params.get("message")) or "failed on purpose"
    raise StepError(message)


STEP = CoreStep(
    name="fail",
    Params=Params,
    run=run,
    description="Fail the step on purpose with `message`",
)
