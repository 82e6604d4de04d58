"""The built-in ``core.*`` steps, one module each; :data:`CORE_STEPS` maps a name to its :class:`CoreStep`.

To add a step: write ``app/engine/steps/NAME.py`` defining ``Params`` (the ``with`` block as
written), ``async def run(call: CoreCall)`` and ``STEP = CoreStep(...)`` with a docstring example
(``tests/engine/test_step_docs.py`` runs it), then add one line to :data:`_MODULES`.
"""

from __future__ import annotations

from types import ModuleType

from app.engine.steps import (
    count,
    fail,
    filter,
    flatten,
    group,
    join,
    limit,
    map,
    merge,
    regex,
    set,
    sort,
    template,
    unique,
)
from app.engine.steps.base import CoreStep
from app.engine.steps.common import CoreCall

_MODULES: tuple[ModuleType, ...] = (
    filter,
    map,
    sort,
    limit,
    unique,
    merge,
    join,
    group,
    count,
    flatten,
    set,
    template,
    regex,
    fail,
)

CORE_STEPS: dict[str, CoreStep] = {module.STEP.name: module.STEP for module in _MODULES}
"""Every built-in step by name (``filter`` for ``core.filter``)."""

__all__ = ["CORE_STEPS", "CoreCall", "CoreStep"]
