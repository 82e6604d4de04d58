"""Published endpoint runs executed in memory at once, recorded write-behind.

A ``GET /v1/apps/...`` caller waits for the answer, so its run does not go through the run queue and
the database first: :meth:`DirectRuns.run` executes it right away, in this process, with the same engine,
plan cache, operation caller, secrets, masking, output limits and timeouts as a queued run
(:meth:`app.runtime.service.RunService.execute`), and hands the finished run (with its steps) to the
:class:`~app.runtime.run_recorder.RunRecorder`, which writes it a few milliseconds later in a batch.
The run is visible in ``GET /v1/runs`` once written; a crash may lose the records of the last few
milliseconds of endpoint runs (their callers had their answers).

Engine concurrency is bounded by ``max_concurrent_runs`` (a pool of its own, next to the queue's). A
pipeline declaring ``concurrency`` is NOT run here: the endpoint uses the queued path, where the limit
holds across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.engine.executor import execute as execute_plan
from app.engine.types import OperationCaller, RunRequest, RunStatus, StepStates
from app.runtime.masking import MaskingObserver, masking_scope
from app.runtime.plans import PlanCache, revision_key
from app.runtime.run_recorder import FinishedRun, RunRecorder
from app.runtime.run_secrets import NO_SECRETS, RunSecrets
from app.runtime.run_values import error_dict, final_state, now, unexpected_failure
from app.settings import Settings
from app.storage.base import new_id


@dataclass(frozen=True, slots=True)
class DirectTarget:
    """What to run: a pipeline at a revision (its spec is in the plan cache or given as a document)."""

    account_id: str
    pipeline_id: str
    pipeline_name: str
    revision: int


class DirectRuns:
    """Executes endpoint runs in memory and records them write-behind (see the module)."""

    def __init__(
        self,
        plans: PlanCache,
        settings: Settings,
        caller_for: Any,
        recorder: RunRecorder,
        *,
        secrets: RunSecrets | None = None,
    ) -> None:
        self._plans = plans
        self._settings = settings
        self._caller_for = caller_for  # account id -> OperationCaller
        self.recorder = recorder
        self._secrets = secrets
        self._slots = asyncio.Semaphore(max(1, settings.max_concurrent_runs))
        self._tasks: set[asyncio.Task[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]] = set()

    def start(
        self, target: DirectTarget, document: Any, *, inputs: dict[str, Any], trigger: dict[str, Any]
    ) -> tuple[str, asyncio.Task[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]]:
        """Start the run now; gives its id and the task giving ``(status, outputs, error)`` when it ends
        (the task goes on, and the run is recorded, even when nobody waits for it any more)."""
        run_id = new_id()
        task = asyncio.create_task(self._execute(run_id, target, document, inputs, trigger))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run_id, task

    async def aclose(self) -> None:
        """At shutdown: stop the runs still executing (recorded as failed) and write every record."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.recorder.close()

    async def _execute(
        self,
        run_id: str,
        target: DirectTarget,
        document: Any,
        inputs: dict[str, Any],
        trigger: dict[str, Any],
    ) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
        created_at = now()
        observer = StepStates()  # filled by the engine itself (a masking observer: masked copies)
        status: str = RunStatus.FAILED.value
        outputs: dict[str, Any] | None = None
        error: dict[str, Any] | None = None
        masker = NO_SECRETS
        started_at = created_at
        try:
            async with self._slots:
                started_at = now()
                key = revision_key(target.pipeline_id, target.revision)
                compiled = self._plans.get(key, document)
                secrets: dict[str, str] = {}
                if self._secrets is not None:
                    resolved = await self._secrets.prepare(target.account_id, key, compiled.spec)
                    secrets, masker = resolved.values, resolved.masker
                request = RunRequest(
                    run_id=run_id,
                    inputs=dict(inputs),
                    trigger=dict(trigger),
                    secrets=secrets,
                    started_at=started_at,
                )
                caller: OperationCaller = self._caller_for(target.account_id)
                with masking_scope(masker) if masker else contextlib.nullcontext():
                    result = await execute_plan(
                        compiled.plan,
                        request,
                        caller=caller,
                        observer=MaskingObserver(observer, masker) if masker else observer,
                    )
            status, outputs, error = final_state(result, masker, self._settings.run_outputs_max_bytes)
        except asyncio.CancelledError:
            status, outputs = RunStatus.FAILED.value, None
            error = error_dict("interrupted", "the server stopped while the run was executing")
            recording = self._record(
                run_id, target, inputs, trigger, observer, status, outputs, error, created_at, started_at
            )
            await asyncio.shield(recording)
            raise
        except Exception as exc:
            status, outputs, error = unexpected_failure(run_id, exc, masker)
        await self._record(
            run_id, target, inputs, trigger, observer, status, outputs, error, created_at, started_at
        )
        return status, outputs, error

    async def _record(
        self,
        run_id: str,
        target: DirectTarget,
        inputs: dict[str, Any],
        trigger: dict[str, Any],
        observer: StepStates,
        status: str,
        outputs: dict[str, Any] | None,
        error: dict[str, Any] | None,
        created_at: datetime,
        started_at: datetime,
    ) -> None:
        succeeded = status == RunStatus.SUCCEEDED.value
        await self.recorder.add(
            FinishedRun(
                id=run_id,
                account_id=target.account_id,
                pipeline_id=target.pipeline_id,
                pipeline_name=target.pipeline_name,
                revision=target.revision,
                status=status,
                trigger=trigger,
                inputs=inputs,
                outputs=outputs,
                error=error,
                created_at=created_at,
                started_at=started_at,
                finished_at=now(),
                steps=list(observer.states.values()),
                # A succeeded endpoint run keeps a preview of its step outputs (see the settings).
                step_output_max_bytes=(self._settings.endpoint_step_output_max_bytes if succeeded else None),
                # Its steps in its own row: a succeeded run is never resumed nor retried from its steps.
                compact=succeeded,
            )
        )


__all__ = ["DirectRuns", "DirectTarget"]
