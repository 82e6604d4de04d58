"""Run a compiled :class:`~app.engine.plan.Plan`: the DAG on asyncio, pure (no SQL, no HTTP).

Usage::

    plan = compile_plan(spec)                      # once per pipeline revision; cacheable
    result = await execute(plan, RunRequest(run_id="r1", inputs={...}),
                           caller=my_caller, observer=NullObserver(), cancel=event)

Semantics (the pipeline format leaves these to the engine; tests in ``tests/engine`` pin them):

* **Order.** A step starts as soon as every step it references (``with``, ``if``, ``for_each``)
  and every ``needs`` step is finished; independent steps run concurrently.
* **Scope.** ``inputs``, ``steps`` (``{id: {output, status}}`` of finished steps), ``trigger``,
  ``secrets``, ``run`` (``{id, started_at}``), and ``item``/``index`` per element. A skipped step's
  output is null; a path through null gives null (``${{ steps.s.output.entries }}``), and list
  parameters treat null as an empty list.
* **if** must yield a boolean (else the step fails with ``expression_error``); false → the step is
  ``skipped`` with output null.
* **for_each** yields a list (null counts as empty): the step runs once per element, at most
  ``concurrency`` at a time, with its own attempts each; the output is the list of results in
  input order; the first failing element fails the step (the others are cancelled), its message
  prefixed ``item N:``. ``attempts`` is the most attempts any element took.
* **timeout / retry**: see :mod:`app.engine.attempts` and :mod:`app.engine.plan`.
* **on_error: continue** → the step is ``failed`` with its error, its output null or
  ``on_error_output``, and the run goes on. **on_error: fail** (default) → the run fails: running
  steps are cancelled and steps not started yet are never started; both end ``cancelled`` with an
  error ``{code: cancelled}`` saying why. The same happens when the ``cancel`` event is set, and
  the run ends ``cancelled``. So ``skipped`` only ever means "its ``if`` was false".
* **Errors.** A step error keeps its code and message; any other Python exception in a step
  becomes code ``internal_error`` naming it. ``execute`` itself does not raise, except
  ``CancelledError`` when the task running it is cancelled (its steps are cancelled first).
* **outputs** are evaluated when every step is done; an error there fails the run.
* **prior** results (``RunRequest.prior``) of ``succeeded``/``skipped`` steps are reused — not run
  again, their outputs in scope — provided every step they depend on is reused too (otherwise
  their inputs may change, so they run again). ``RunRequest.attempts_used`` (a run resumed after a
  restart) makes a step's attempts go on from that number, within the same retry budget.
* **Observer.** ``step_started`` is called when a step begins (before ``if``); ``step_finished``
  exactly once for every step of the plan, with its final :class:`StepResult` (a copy): begun
  steps, reused prior steps (a log line says so) and never-started ones alike. An observer that
  raises is logged and ignored: the returned :class:`RunResult` is the authority.
* Outputs of connector calls are made JSON (pydantic models dumped, datetimes as RFC 3339).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel

from app.engine.attempts import attempt, attempt_once, internal_error
from app.engine.paths import json_type
from app.engine.plan import Plan, PlannedStep, compile_plan
from app.engine.steps.common import CoreCall
from app.engine.types import (
    NullObserver,
    OperationCall,
    OperationCaller,
    RunObserver,
    RunRequest,
    RunResult,
    RunStatus,
    StepResult,
    StepStates,
    StepStatus,
)
from app.engine.types import StepError as ErrorInfo
from app.errors import ExpressionError, MashpipeError, StepError
from app.pipelines.expressions import to_json_value

__all__ = ["Plan", "compile_plan", "execute", "to_output"]

logger = logging.getLogger(__name__)

MAX_LOG_LINES = 1000
"""Log lines kept per step; the rest is summarised in one last line."""

_REUSABLE = (StepStatus.SUCCEEDED, StepStatus.SKIPPED)


_now: Callable[[], datetime] = functools.partial(datetime.now, UTC)
"""The current time, aware UTC (a partial: no Python frame per call, two per step)."""


_STRICT_JSON = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def to_output(value: Any) -> Any:
    """A step output as a JSON value (pydantic models dumped, the rest through ``to_json_value``).

    Checking that a value is JSON already costs one ``orjson.dumps`` (~20 ms for 50,000 API
    objects); only a value that is not gets walked and copied."""
    try:
        orjson.dumps(value, option=_STRICT_JSON)
    except TypeError:
        return _convert(value)
    return value


def _convert(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_convert(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _convert(v) for k, v in value.items()}
    return to_json_value(value)


def _timestamp(moment: datetime) -> Any:
    """``to_json_value(moment)`` (RFC 3339, ``Z`` for UTC), without its type checks for a datetime."""
    if type(moment) is datetime:
        return moment.isoformat().replace("+00:00", "Z")
    return to_json_value(moment)


def _snapshot(result: StepResult) -> StepResult:
    """A copy of a step's state for the observer (its logs copied: the step goes on appending).

    Spelled out rather than ``dataclasses.replace``, which inspects the fields on every call."""
    return StepResult(
        result.step_id,
        result.status,
        result.attempts,
        result.started_at,
        result.finished_at,
        result.output,
        result.error,
        list(result.logs),
    )


def _info(error: MashpipeError) -> ErrorInfo:
    return ErrorInfo(code=error.code, message=error.message, details=to_json_value(error.details))


def _prefixed(error: MashpipeError, prefix: str) -> StepError:
    if isinstance(error, ExpressionError):
        return ExpressionError(f"{prefix}{error.message}", details=error.details)
    return StepError(f"{prefix}{error.message}", code=error.code, details=error.details)


class _Run:
    """The state of one execution."""

    def __init__(
        self, plan: Plan, request: RunRequest, caller: OperationCaller, observer: RunObserver
    ) -> None:
        self.plan = plan
        self.request = request
        self.caller = caller
        self.observer = observer
        self.started_at = request.started_at or _now()
        self.results: dict[str, StepResult] = {}  # finished steps
        self.scope_steps: dict[str, dict[str, Any]] = {}
        self.variables: dict[str, Any] = {
            # JSON already, normally: checked in one orjson pass, copied only when not.
            "inputs": to_output(request.inputs),
            "trigger": to_output(request.trigger),
            "secrets": {str(k): str(v) for k, v in request.secrets.items()},
            "steps": self.scope_steps,
        }
        if plan.roots is None or "run" in plan.roots:  # (its text costs a microsecond: only if read)
            self.variables["run"] = {"id": request.run_id, "started_at": _timestamp(self.started_at)}
        self.running: dict[asyncio.Task[None], StepResult] = {}
        # The null observer does nothing with what it is told: no copies, no calls. StepStates gets the
        # states themselves, put in its dictionary as steps start and finish: no copies, no calls either.
        self.kept = observer.states if type(observer) is StepStates else None
        self.observed = type(observer) is not NullObserver and self.kept is None

    # ------------------------------------------------------------------ observer

    async def _notify(self, started: bool, result: StepResult) -> None:
        if not self.observed:
            return
        snapshot = _snapshot(result)
        try:
            if started:
                await self.observer.step_started(self.request.run_id, snapshot)
            else:
                await self.observer.step_finished(self.request.run_id, snapshot)
        except Exception:
            logger.exception("run %s: the observer failed on step %s", self.request.run_id, result.step_id)

    async def _record(self, result: StepResult) -> None:
        self._store(result)
        if self.observed:
            await self._notify(False, result)

    def _store(self, result: StepResult) -> None:
        """Keep a finished step's result and put it in scope (what ``_record`` does before telling)."""
        if result.finished_at is None:
            result.finished_at = _now()
        if len(result.logs) > MAX_LOG_LINES:
            dropped = len(result.logs) - (MAX_LOG_LINES - 1)
            result.logs[MAX_LOG_LINES - 1 :] = [f"... {dropped} more log lines dropped"]
        self.results[result.step_id] = result
        if self.kept is not None:
            self.kept[result.step_id] = result
        # (``_value_``: the member's str, without the descriptor behind ``value``)
        self.scope_steps[result.step_id] = {"output": result.output, "status": result.status._value_}

    # ------------------------------------------------------------------ one step

    def _call(
        self, step: PlannedStep, variables: Mapping[str, Any], index: int | None, result: StepResult
    ) -> Awaitable[Any]:
        """The call of one step (one element of a for_each), to await: its parameters evaluated now,
        then its attempts. A single attempt of a core step is its :func:`attempt_once` itself."""
        params = step.params.evaluate(variables)
        log = result.logs
        spec = step.spec
        attempts_used = self.request.attempts_used
        first = attempts_used[spec.id] + 1 if attempts_used and spec.id in attempts_used else 1
        single = step.retry is None and first == 1
        core = step.core
        if core is not None:
            assert core.run is not None
            run = core.run
            item_fields = step.item_fields
            fns = {path: field.bind(variables) for path, field in item_fields.items()} if item_fields else {}
            call = CoreCall(spec.id, params, fns, log)
            if single:
                result.attempts = 1
                return attempt_once(run, call, step.timeout, spec.uses)
            return self._attempts(step, result, lambda number: run(call), first)
        caller, connection, run_id = self.caller, spec.connection, self.request.run_id
        uses, step_id, timeout = spec.uses, spec.id, step.timeout

        def once(number: int) -> Awaitable[Any]:
            return caller(
                OperationCall(uses, params, connection, run_id, step_id, number, index, timeout, log)
            )

        if single:
            result.attempts = 1
            return self._operation_output(attempt_once(once, 1, timeout, uses))
        return self._operation_output(self._attempts(step, result, once, first))

    async def _operation_output(self, value: Awaitable[Any]) -> Any:
        return to_output(await value)

    async def _attempts(
        self, step: PlannedStep, result: StepResult, once: Callable[[int], Awaitable[Any]], first: int
    ) -> Any:
        def seen(number: int) -> None:
            if number > result.attempts:
                result.attempts = number

        log, label = result.logs, step.spec.uses
        return await attempt(
            once, limit=step.timeout, retry=step.retry, log=log, label=label, on_attempt=seen, first=first
        )

    async def _for_each(self, step: PlannedStep, elements: list[Any], result: StepResult) -> list[Any]:
        outputs: list[Any] = [None] * len(elements)
        pending = iter(range(len(elements)))

        async def worker() -> None:
            for index in pending:  # one shared iterator: each element is taken once
                variables = {**self.variables, "item": elements[index], "index": index}
                try:
                    outputs[index] = await self._call(step, variables, index, result)
                except MashpipeError as exc:
                    raise _prefixed(exc, f"item {index}: ") from None

        workers = [asyncio.create_task(worker()) for _ in range(min(step.spec.concurrency, len(elements)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return outputs

    async def _run_step(self, step: PlannedStep, result: StepResult) -> None:
        """Run one step to its end, filling ``result``; only cancellation escapes."""
        try:
            if step.condition is not None:
                verdict = step.condition.evaluate(self.variables)
                if not isinstance(verdict, bool):
                    raise ExpressionError(f"`if` must yield a boolean, got {json_type(verdict)}")
                if not verdict:
                    result.status = StepStatus.SKIPPED
                    result.logs.append(f"skipped: `{step.condition.source}` is false")
                    return
            if step.for_each is not None:
                elements = step.for_each.evaluate(self.variables)
                if elements is None:
                    elements = []
                if isinstance(elements, tuple):
                    elements = list(elements)
                if not isinstance(elements, list):
                    raise StepError(
                        f"for_each must yield a list, got {json_type(elements)}", code="invalid_params"
                    )
                output: Any = await self._for_each(step, elements, result)
            else:
                output = await self._call(step, self.variables, None, result)
            result.output = output
            result.status = StepStatus.SUCCEEDED
        except MashpipeError as exc:
            self._fail(step, result, exc)
        except Exception as exc:
            self._fail(step, result, internal_error(exc, step.uses))
        finally:
            result.finished_at = _now()

    def _fail(self, step: PlannedStep, result: StepResult, error: MashpipeError) -> None:
        result.status = StepStatus.FAILED
        result.error = _info(error)
        result.output = to_json_value(step.spec.on_error_output) if step.spec.on_error == "continue" else None

    # ------------------------------------------------------------------ the run

    async def _reuse_prior(self) -> None:
        for sid in self.plan.order:
            prior = self.request.prior.get(sid)
            step = self.plan.steps[sid]
            if prior is None or prior.status not in _REUSABLE or not step.deps <= self.results.keys():
                continue
            reused = dataclasses.replace(
                prior, step_id=sid, logs=[*prior.logs, "reused from an earlier attempt"]
            )
            await self._record(reused)

    async def _start(self, sid: str) -> None:
        result = StepResult(step_id=sid, status=StepStatus.RUNNING, started_at=_now())
        if self.kept is not None:
            self.kept[sid] = result
        await self._notify(True, result)
        task = asyncio.create_task(self._run_step(self.plan.steps[sid], result), name=f"step {sid}")
        self.running[task] = result

    async def _stop(self, pending: list[str], reason: str) -> None:
        """Cancel the running steps and close the pending ones, both ``cancelled`` because of ``reason``."""
        tasks = list(self.running)
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            result = self.running.pop(task)
            if task.cancelled() or result.status == StepStatus.RUNNING:
                result.status = StepStatus.CANCELLED
                result.output = None
                result.error = ErrorInfo(code="cancelled", message=f"cancelled: {reason}")
            await self._record(result)
        for sid in pending:
            error = ErrorInfo(code="cancelled", message=f"not started: {reason}")
            await self._record(StepResult(step_id=sid, status=StepStatus.CANCELLED, error=error))
        pending.clear()

    def _result(
        self, status: RunStatus, outputs: dict[str, Any] | None, error: ErrorInfo | None
    ) -> RunResult:
        steps = {sid: self.results[sid] for sid in self.plan.order if sid in self.results}
        return RunResult(status, outputs, steps, error, self.started_at, _now())

    async def run(self, cancel: asyncio.Event | None) -> RunResult:
        watcher = asyncio.create_task(cancel.wait()) if cancel is not None else None
        try:
            return await self._loop(cancel, watcher)
        finally:
            if watcher is not None:
                watcher.cancel()
            for task in self.running:
                task.cancel()
            if self.running:
                await asyncio.gather(*self.running, return_exceptions=True)

    async def _loop(self, cancel: asyncio.Event | None, watcher: asyncio.Task[Any] | None) -> RunResult:
        if self.request.prior:
            await self._reuse_prior()
        steps, results = self.plan.steps, self.results
        pending = [sid for sid in self.plan.order if sid not in results]
        while pending or self.running:
            if cancel is not None and cancel.is_set():
                await self._stop(pending, "the run was cancelled")
                return self._result(
                    RunStatus.CANCELLED, None, ErrorInfo("cancelled", "the run was cancelled")
                )
            done_ids = results.keys()
            ready = [s for s in pending if steps[s].deps <= done_ids]
            if watcher is None and not self.running and len(ready) == 1:
                # A lone step with nothing beside it and no cancel event to watch: run it in this task
                # (a task and a wait per step cost more than a small step itself).
                # (Spelled out here rather than in a method: one coroutine less per step.)
                sid = ready[0]
                pending.remove(sid)
                result = StepResult(sid, StepStatus.RUNNING, 0, _now())
                if self.kept is not None:
                    self.kept[sid] = result
                elif self.observed:
                    await self._notify(True, result)
                step = steps[sid]
                await self._run_step(step, result)
                self._store(result)
                if self.observed:
                    await self._notify(False, result)
                if result.status is StepStatus.FAILED and step.spec.on_error == "fail":
                    return await self._failed(pending, result)
                continue
            for sid in ready:
                pending.remove(sid)
                await self._start(sid)
            if not self.running:  # unreachable for a compiled plan: every dependency finishes
                await self._stop(pending, "its dependencies cannot finish")
                message = f"steps {', '.join(sorted(self.plan.steps))} cannot all be scheduled"
                return self._result(RunStatus.FAILED, None, ErrorInfo("internal_error", message))
            waiting: set[asyncio.Future[Any]] = set(self.running)
            if watcher is not None:
                waiting.add(watcher)
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            failed: StepResult | None = None
            for task in [t for t in self.running if t in done]:
                result = self.running.pop(task)
                await self._record(result)
                step = self.plan.steps[result.step_id]
                if result.status == StepStatus.FAILED and step.spec.on_error == "fail":
                    if failed is None or step.position < self.plan.steps[failed.step_id].position:
                        failed = result
            if failed is not None:
                return await self._failed(pending, failed)
        return self._outputs()

    async def _failed(self, pending: list[str], failed: StepResult) -> RunResult:
        """End the run because step ``failed`` failed: the others are cancelled or never started."""
        assert failed.error is not None
        await self._stop(pending, f"step `{failed.step_id}` failed")
        error = ErrorInfo(
            code=failed.error.code,
            message=f"step `{failed.step_id}` failed: {failed.error.message}",
            details={"step_id": failed.step_id, "details": failed.error.details},
        )
        return self._result(RunStatus.FAILED, None, error)

    def _outputs(self) -> RunResult:
        outputs: dict[str, Any] = {}
        for name, template in self.plan.outputs.items():
            try:
                outputs[name] = template.evaluate(self.variables)
            except MashpipeError as exc:
                error = ErrorInfo(exc.code, f"outputs.{name}: {exc.message}", to_json_value(exc.details))
                return self._result(RunStatus.FAILED, None, error)
            except Exception as exc:
                error = _info(internal_error(exc, f"outputs.{name}"))
                return self._result(RunStatus.FAILED, None, error)
        return self._result(RunStatus.SUCCEEDED, outputs, None)


async def execute(
    plan: Plan,
    request: RunRequest,
    *,
    caller: OperationCaller,
    observer: RunObserver,
    cancel: asyncio.Event | None = None,
) -> RunResult:
    """Execute ``plan`` for ``request``; see the module docstring for the semantics."""
    return await _Run(plan, request, caller, observer).run(cancel)
