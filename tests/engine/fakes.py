"""Fakes for running the engine in tests, reusable by any test suite.

* :class:`FakeCaller` — an ``OperationCaller`` whose operations are plain Python: a fixed value, or
  a function of the :class:`~app.engine.types.OperationCall` (sync or async). Every call is recorded.
* :func:`flaky` — an operation that fails a given number of times, then answers.
* :class:`RecordingObserver` — a ``RunObserver`` keeping every event in order.
* :func:`pipeline` / :func:`load` — a ``PipelineSpec`` from a list of steps or from YAML text.
* :func:`run` — compile and execute in one call.

Example::

    caller = FakeCaller({"demo.items": [{"n": 1}, {"n": 2}]})
    result = await run(load('''
        version: 1
        name: t
        steps:
          - {id: src, uses: demo.items}
          - {id: big, uses: core.filter, with: {items: "${{ steps.src.output }}", where: item.n > 1}}
        outputs: {big: "${{ steps.big.output }}"}
    '''), caller=caller)
    assert result.outputs == {"big": [{"n": 2}]}
"""

from __future__ import annotations

import asyncio
import inspect
import textwrap
from collections.abc import Callable, Mapping
from typing import Any

from ruamel.yaml import YAML

from app.engine.executor import compile_plan, execute
from app.engine.types import OperationCall, RunRequest, RunResult, StepResult, StepStatus
from app.errors import StepError, UpstreamError
from app.pipelines.spec import PipelineSpec

Handler = Callable[[OperationCall], Any]


class FakeCaller:
    """Connector operations for tests: ``uses`` -> a value, or ``handler(call)`` (sync or async)."""

    def __init__(self, operations: Mapping[str, Any] | None = None) -> None:
        self.operations: dict[str, Any] = dict(operations or {})
        self.calls: list[OperationCall] = []

    def on(self, uses: str, operation: Any) -> FakeCaller:
        """Define (or replace) an operation; returns self for chaining."""
        self.operations[uses] = operation
        return self

    def calls_to(self, uses: str) -> list[OperationCall]:
        return [call for call in self.calls if call.uses == uses]

    async def __call__(self, call: OperationCall) -> Any:
        self.calls.append(call)
        if call.uses not in self.operations:
            raise StepError(f"the fake caller has no operation `{call.uses}`", code="unknown_operation")
        operation = self.operations[call.uses]
        value = operation(call) if callable(operation) else operation
        if inspect.isawaitable(value):
            value = await value
        return value


def flaky(failures: int, value: Any = None, *, error: Callable[[], Exception] | None = None) -> Handler:
    """An operation failing ``failures`` times (default: a retryable HTTP 503), then returning ``value``."""
    make_error = error or (lambda: UpstreamError("503 from upstream", retry_kind="http_5xx"))
    state = {"left": failures}

    def handler(call: OperationCall) -> Any:
        if state["left"] > 0:
            state["left"] -= 1
            raise make_error()
        return value

    return handler


class RecordingObserver:
    """Keeps ``(event, step_id, status)`` tuples in order, and the results passed."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, StepStatus]] = []
        self.results: list[tuple[str, StepResult]] = []

    async def step_started(self, run_id: str, result: StepResult) -> None:
        self.events.append(("started", result.step_id, result.status))
        self.results.append(("started", result))

    async def step_finished(self, run_id: str, result: StepResult) -> None:
        self.events.append(("finished", result.step_id, result.status))
        self.results.append(("finished", result))

    def finished(self, step_id: str) -> list[StepResult]:
        return [r for event, r in self.results if event == "finished" and r.step_id == step_id]


def pipeline(
    steps: list[dict[str, Any]],
    *,
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
    name: str = "test",
) -> PipelineSpec:
    """A spec from plain data (keys as in the file: ``with``, ``if``)."""
    data: dict[str, Any] = {"version": 1, "name": name, "steps": steps}
    if inputs is not None:
        data["inputs"] = inputs
    if outputs is not None:
        data["outputs"] = outputs
    if defaults is not None:
        data["defaults"] = defaults
    return PipelineSpec.model_validate(data)


def load(text: str) -> PipelineSpec:
    """A spec from YAML text (indentation is removed first)."""
    return PipelineSpec.model_validate(YAML(typ="safe", pure=True).load(textwrap.dedent(text)))


async def run(
    spec: PipelineSpec,
    inputs: dict[str, Any] | None = None,
    *,
    caller: Any = None,
    observer: Any = None,
    cancel: asyncio.Event | None = None,
    prior: dict[str, StepResult] | None = None,
    trigger: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    run_id: str = "run-1",
) -> RunResult:
    """Compile and execute ``spec`` with fakes where nothing is given."""
    request = RunRequest(
        run_id=run_id,
        inputs=inputs or {},
        trigger=trigger or {"kind": "manual"},
        secrets=secrets or {},
        prior=prior or {},
    )
    return await execute(
        compile_plan(spec),
        request,
        caller=caller if caller is not None else FakeCaller(),
        observer=observer if observer is not None else RecordingObserver(),
        cancel=cancel,
    )


async def run_step(uses: str, with_: dict[str, Any], **step: Any) -> StepResult:
    """Run one step alone (``core.*`` usually) and return its result."""
    result = await run(pipeline([{"id": "s", "uses": uses, "with": with_, **step}]))
    return result.steps["s"]
