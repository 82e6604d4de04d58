"""Executing queued runs: claim, run the engine, record the final state; cancelling and handing back.

:meth:`RunExecutor.execute` is the one function that executes a run, whatever queue delivered its id
(:meth:`app.runtime.service.RunService.execute` calls it): it claims the run (queued → running, under
the pipeline's limit), loads its revision's compiled plan, runs the engine with a storage-backed
observer (reusing the steps of an earlier attempt for a resumed or retried run), and always records a
final state (any exception → failed, with the message).

The executor also keeps what this process knows of the runs it executes (their cancel events and
pipelines), the runs waiting for a slot of their pipeline (:class:`~app.runtime.limits.PipelineGate`)
and the runs whose claim failed on an error, which :meth:`RunExecutor.hand_back` gives back to the
queue. Waiters are told through :class:`~app.runtime.run_waits.RunWaits`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from app.engine.executor import execute as execute_plan
from app.engine.types import OperationCaller, RunRequest, RunStatus
from app.errors import Conflict, NotFound
from app.runtime.handoff import CreatedRuns
from app.runtime.limits import PipelineGate, conflict_error, limit_of
from app.runtime.masking import Masker, MaskingObserver, masking_scope
from app.runtime.observer import StorageObserver
from app.runtime.plans import CompiledRevision, PlanCache, revision_key
from app.runtime.queue import QueueClosed, RunQueue
from app.runtime.recovery import ResumeState, leave_interrupted, resume_state
from app.runtime.run_secrets import RunSecrets
from app.runtime.run_values import FINISHED, error_dict, final_state, now, unexpected_failure
from app.runtime.run_waits import RunWaits
from app.settings import Settings
from app.storage.db import Database
from app.storage.models import Run
from app.storage.repositories import PipelineRepo, RunRepo, RuntimeRepo
from app.storage.repositories.runtime import StaleRun

logger = logging.getLogger("mashpipe.runtime")

Claimed = tuple[Run, CompiledRevision | Exception, datetime, ResumeState]
"""A claimed run: its row, its compiled revision (or the error compiling it), its start, what to reuse."""


class RunExecutor:
    """Claims, executes and finishes runs in this process (see the module)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        caller: OperationCaller,
        waits: RunWaits,
        *,
        plans: PlanCache,
        secrets: RunSecrets | None,
        created: CreatedRuns,
    ) -> None:
        self._db = db
        self._settings = settings
        self._caller = caller
        self._waits = waits
        self.plans = plans
        self.secrets = secrets  # resolves a run's `secrets.*` at its start; None: runs see no secrets
        self.created = created  # queued runs recorded here, handed to their claim (app.runtime.handoff)
        self.queue: RunQueue | None = None
        self.claim_lock = asyncio.Lock()  # claims and cancellations of queued runs, one at a time
        self._cancel_events: dict[str, asyncio.Event] = {}
        self._pipeline_of: dict[str, str] = {}  # run id -> pipeline id, for runs executing here
        self.gate = PipelineGate()  # runs waiting for a slot of their pipeline (on_conflict: queue)
        self._unclaimed: set[str] = set()  # runs whose claim failed on an error: handed back by tend()
        self._freed: dict[str, int] = {}  # pipeline id -> runs of it finished here (wake-up bookkeeping)

    @property
    def executing(self) -> frozenset[str]:
        """Ids of the runs this process is executing right now."""
        return frozenset(self._cancel_events)

    def caller_for(self, account_id: str) -> OperationCaller:
        """The caller bound to the run's account (its connections), when the caller can be bound."""
        bind = getattr(self._caller, "for_account", None)
        return bind(account_id) if callable(bind) else self._caller

    # -- executing --------------------------------------------------------------------------------

    async def execute(self, run_id: str) -> None:
        """Execute a queued run to its end. Never raises (except on cancellation of the task itself)
        and never leaves the run ``running``."""
        cancel = asyncio.Event()
        claimed = await self._claim(run_id, cancel)
        if claimed is None:
            return
        run, compiled, started_at, resume = claimed
        observer = StorageObserver(self._db, run_id, max_output_bytes=self._settings.step_output_max_bytes)
        status: str = RunStatus.FAILED.value
        outputs: dict[str, Any] | None = None
        error: dict[str, Any] | None = None
        masker = Masker()  # secret values are masked in everything recorded or logged (app.runtime.masking)
        try:
            if isinstance(compiled, Exception):
                raise compiled
            secrets: dict[str, str] = {}
            if self.secrets is not None:
                key = revision_key(run.pipeline_id, run.revision)
                resolved = await self.secrets.prepare(run.account_id, key, compiled.spec)
                secrets, masker = resolved.values, resolved.masker
            request = RunRequest(
                run_id=run.id,
                inputs=dict(run.inputs),
                trigger=dict(run.trigger),
                secrets=secrets,
                started_at=started_at,
                prior=resume.prior,
                attempts_used=resume.attempts_used,
            )
            with masking_scope(masker):
                result = await execute_plan(
                    compiled.plan,
                    request,
                    caller=self.caller_for(run.account_id),
                    observer=MaskingObserver(observer, masker) if masker else observer,
                    cancel=cancel,
                )
            status, outputs, error = final_state(result, masker, self._settings.run_outputs_max_bytes)
        except asyncio.CancelledError:
            # The server is stopping: resume the run at the next start, or fail it, as for a crash.
            await asyncio.shield(self._interrupted(run, observer))
            raise
        except Exception as exc:
            status, outputs, error = unexpected_failure(run_id, exc, masker)
        await self._finish(run_id, status, outputs, error, observer)

    async def _claim(self, run_id: str, cancel: asyncio.Event) -> Claimed | None:
        """Mark the run running when it is still queued and its pipeline has a free slot; None when it
        does not start now (cancelled, gone, waiting for a slot, or refused by a skip/fail limit).

        Also gives the compiled revision (or the error compiling it, which fails the run) and, for a
        resumed or retried run, the step results to reuse."""
        async with self.claim_lock:
            try:
                async with self._db.session() as session:
                    handed = self.created.pop(run_id)  # created here: its row as written, not read back
                    run = handed.run() if handed is not None else await RunRepo(session).get_any(run_id)
                    if run is None or run.status != RunStatus.QUEUED.value:
                        await self.dropped(run_id)
                        return None
                    key = revision_key(run.pipeline_id, run.revision)
                    compiled: CompiledRevision | Exception | None = self.plans.cached(key)
                    if compiled is None:
                        revision = await PipelineRepo(session).get_revision(run.pipeline_id, run.revision)
                        if revision is None:
                            compiled = NotFound(f"revision {run.revision} of the pipeline is gone")
                        else:
                            try:
                                compiled = self.plans.get(key, revision.spec)
                            except Exception as exc:  # a stored spec the engine refuses fails the run
                                compiled = exc
                    limit = limit_of(compiled.spec) if isinstance(compiled, CompiledRevision) else None
                    queueing = limit is not None and limit.on_conflict == "queue"
                    if queueing and self.gate.should_wait(run.pipeline_id, run_id):
                        self.gate.park(run.pipeline_id, run_id)  # behind the runs already waiting
                        return None
                    claimed_at = now()
                    repo = RuntimeRepo(session)
                    freed = self._freed.get(run.pipeline_id, 0)
                    outcome, started_at = await repo.claim_run(
                        run_id, claimed_at, pipeline_id=run.pipeline_id, limit=limit.limit if limit else None
                    )
                    if handed is not None and started_at is not None and started_at != claimed_at:
                        run.started_at = started_at  # started before (by a process that died): resumed
                    if outcome == "not_queued":
                        await self.dropped(run_id)
                        return None
                    if outcome == "at_limit":
                        assert limit is not None
                        if queueing:
                            self.gate.park(run.pipeline_id, run_id)
                            if self._freed.get(run.pipeline_id, 0) != freed:
                                await self._wake(run.pipeline_id)  # a run finished meanwhile: try again
                            return None
                        status, error = conflict_error(run.pipeline_name, limit)
                        await RunRepo(session).finish(run_id, status, None, error, claimed_at)
                        await session.commit()
                        self._waits.notify(run_id)
                        return None
                    self.gate.started(run_id)
                    resume = ResumeState()
                    if run.started_at is not None or run.retry_of is not None:
                        # resumed after a restart (it had started) and/or a retry: reuse earlier steps
                        own = await repo.step_rows([run.id]) if run.started_at is not None else []
                        earlier = await repo.step_rows([run.retry_of]) if run.retry_of else []
                        resume = resume_state(own, earlier)
                    await session.commit()
                    self._cancel_events[run_id] = cancel
                    self._pipeline_of[run_id] = run.pipeline_id
                    return run, compiled, run.started_at or claimed_at, resume
            except Exception:
                logger.exception("run %s: could not be claimed; tried again shortly", run_id)
                self._unclaimed.add(run_id)
                return None

    async def dropped(self, run_id: str) -> None:
        """A delivered run will not start: if it held its pipeline's turn, pass the turn on."""
        pipeline_id = self.gate.dropped(run_id)
        if pipeline_id is not None:
            await self._wake(pipeline_id)

    async def _wake(self, pipeline_id: str) -> None:
        """A slot of the pipeline may be free: hand its oldest waiting run back to the queue."""
        run_id = self.gate.release(pipeline_id)
        if run_id is None or self.queue is None:
            return
        try:
            await self.queue.enqueue(run_id)
        except QueueClosed:
            pass  # shutting down: the run stays queued in the database and starts after a restart

    async def _interrupted(self, run: Run, observer: StorageObserver) -> None:
        """The run's task is cancelled (the server stops): write its steps, then resume it at the next
        start (back to ``queued``) or fail it, by the same rule as after a crash."""
        self._cancel_events.pop(run.id, None)
        pipeline_id = self._pipeline_of.pop(run.id, None)
        try:
            steps = await observer.drain()
            target = StaleRun(run.id, run.pipeline_id, run.revision)
            await leave_interrupted(self._db, self.plans, target, steps, self._settings.step_output_max_bytes)
        except NotFound:
            logger.info("run %s is gone (pipeline deleted): its final state is not recorded", run.id)
        except Exception:
            logger.exception("run %s: could not record its interruption", run.id)
        finally:
            self._waits.notify(run.id)
            if pipeline_id is not None:
                self.gate.dropped(run.id)

    async def _finish(
        self,
        run_id: str,
        status: str,
        outputs: dict[str, Any] | None,
        error: dict[str, Any] | None,
        observer: StorageObserver | None = None,
    ) -> None:
        """Record the final state, with the step states the observer has not written yet."""
        self._cancel_events.pop(run_id, None)
        pipeline_id = self._pipeline_of.pop(run_id, None)
        try:
            steps = await observer.drain() if observer is not None else []
            async with self._db.session() as session:
                runs = RunRepo(session)
                await runs.upsert_steps(run_id, steps, self._settings.step_output_max_bytes)
                await runs.finish(run_id, status, outputs, error, now())
                await session.commit()
            self._waits.record(run_id, status, outputs, error)
        except NotFound:
            logger.info("run %s is gone (pipeline deleted): its final state is not recorded", run_id)
        except Exception:
            logger.exception("run %s: could not record its final state %s", run_id, status)
        finally:
            self._waits.notify(run_id)
            if pipeline_id is not None:
                self._freed[pipeline_id] = self._freed.get(pipeline_id, 0) + 1
                await self._wake(pipeline_id)

    # -- cancelling and handing back ----------------------------------------------------------------

    async def cancel(self, account_id: str, run_id: str) -> bool:
        """Cancel a queued run at once (or a running one no live executor of this process holds), or
        tell a running one executing here to stop: True in that last case (the caller may wait for it).
        ``NotFound`` for another account's run; ``Conflict`` when finished."""
        async with self.claim_lock:
            async with self._db.session() as session:
                runs = RunRepo(session)
                run = await runs.get(account_id, run_id)
                if run is None:
                    raise NotFound(f"no run {run_id!r}")
                if run.status in FINISHED:
                    raise Conflict(f"run {run_id} is already {run.status}", details={"status": run.status})
                event = self._cancel_events.get(run_id)
                if event is None:
                    # queued, or running with no live executor in this process (it died): cancel now
                    message = (
                        "cancelled before it started"
                        if run.status == RunStatus.QUEUED.value
                        else "cancelled; no live process was executing it"
                    )
                    await runs.finish(
                        run_id, RunStatus.CANCELLED.value, None, error_dict("cancelled", message), now()
                    )
                    await session.commit()
                    self._waits.notify(run_id)
                    await self.dropped(run_id)
                    return False
                event.set()
        return True

    def stop_pipeline_runs(self, pipeline_id: str) -> int:
        """Tell the runs of a pipeline executing in this process to stop (the pipeline is being
        deleted); returns how many were told."""
        told = 0
        for run_id, owner in list(self._pipeline_of.items()):
            event = self._cancel_events.get(run_id)
            if owner == pipeline_id and event is not None:
                event.set()
                told += 1
        return told

    async def hand_back(self, resumed: Iterable[str]) -> None:
        """Give the queue the resumed runs and the runs whose claim failed on an error, then hand back
        the runs waiting for a slot of a pipeline with none executing here (another process may have
        freed it)."""
        if self.queue is not None:
            unclaimed, self._unclaimed = self._unclaimed, set()
            for run_id in [*resumed, *sorted(unclaimed)]:
                await self.queue.enqueue(run_id)
        for pipeline_id in self.gate.idle_pipelines():
            await self._wake(pipeline_id)
