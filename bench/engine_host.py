"""How the benchmarks drive the engine: compile a plan once, run it with a null observer."""

from __future__ import annotations

import itertools
from typing import Any

from app.engine.types import NullObserver, OperationCall, RunRequest, RunResult, RunStatus
from app.pipelines.spec import PipelineSpec
from bench.harness import require

_run_ids = itertools.count(1)


class NoConnectors:
    """An :class:`~app.engine.types.OperationCaller` for pipelines made only of ``core.*`` steps."""

    async def __call__(self, call: OperationCall) -> Any:
        raise RuntimeError(f"the benchmark pipeline unexpectedly called {call.uses}")


def compile_plan(spec: PipelineSpec) -> Any:
    """``app.engine.executor.compile_plan``, or :class:`MissingDependency` while it has not landed."""
    executor = require("app.engine.executor", "compile_plan", "execute")
    return executor.compile_plan(spec)


async def run_plan(plan: Any, inputs: dict[str, Any], caller: Any = None) -> RunResult:
    """Execute ``plan`` once with a null observer; raise when the run does not succeed."""
    executor = require("app.engine.executor", "execute")
    request = RunRequest(run_id=f"bench{next(_run_ids):08d}", inputs=inputs)
    result: RunResult = await executor.execute(
        plan, request, caller=caller or NoConnectors(), observer=NullObserver(), cancel=None
    )
    if result.status != RunStatus.SUCCEEDED:
        failed = [
            f"{step_id}: {step.error.message if step.error else step.status}"
            for step_id, step in result.steps.items()
            if step.status not in ("succeeded", "skipped")
        ]
        message = result.error.message if result.error else "no error recorded"
        raise RuntimeError(f"benchmark run ended {result.status}: {message}; steps: {failed}")
    return result
