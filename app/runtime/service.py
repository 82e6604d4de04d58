"""The run service: records runs, executes them with the engine, waits for, cancels and retries them.

:meth:`RunService.submit` is THE way to start a run, whatever starts it (manual API call, schedule,
webhook, published endpoint, poll): it records the run (``queued``, committed, with the trigger's own
rows when ``in_transaction`` is given) and hands it to the one :class:`~app.runtime.queue.RunQueue`.
Nothing else creates runs that execute. A pipeline's ``concurrency`` limit is applied there (``skip``
/ ``fail``: the run is recorded finished at once) and when the run is claimed (``queue``: it waits,
FIFO per pipeline, see :mod:`app.runtime.limits`).

:meth:`RunService.execute` is the one function that executes a run, whatever queue delivered its id:
it claims the run (queued → running, under the pipeline's limit), loads its revision's compiled plan,
runs the engine with a storage-backed observer (reusing the steps of an earlier attempt for a resumed
or retried run), and always records a final state (any exception → failed, with the message).
Runs left behind by a dead process are resumed or failed by :mod:`app.runtime.recovery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.engine.executor import execute as execute_plan
from app.engine.types import OperationCaller, RunRequest, RunStatus
from app.errors import Conflict, NotFound
from app.pipelines.inputs import coerce_inputs
from app.runtime.admission import record_retry, record_run, revision_spec
from app.runtime.handoff import CreatedRuns
from app.runtime.limits import PipelineGate, conflict_error, limit_of
from app.runtime.masking import Masker, MaskingObserver, masking_scope
from app.runtime.observer import StorageObserver
from app.runtime.output_limits import outputs_error
from app.runtime.plans import CompiledRevision, PlanCache, revision_key
from app.runtime.queue import QueueClosed, RunQueue
from app.runtime.recovery import (
    RecoveryReport,
    ResumeState,
    leave_interrupted,
    recover_stale,
    resume_state,
)
from app.runtime.run_secrets import RunSecrets
from app.settings import Settings
from app.storage.db import Database
from app.storage.models import Run, StepRun
from app.storage.repositories import PipelineRepo, RunRepo, RuntimeRepo
from app.storage.repositories.runtime import StaleRun

InTransaction = Callable[[AsyncSession, Run], Awaitable[None]]
"""Called with the session and the new run (flushed, not committed) in the transaction recording the run:
a trigger writes its own rows there (a schedule fire, a poll cursor, a webhook delivery) so that they and
the run are committed together or not at all. An exception (e.g. ``IntegrityError`` of a lost race) rolls
everything back and is raised to the caller of :meth:`RunService.submit`."""

logger = logging.getLogger("mashpipe.runtime")

FINISHED = frozenset({RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value})
POLL_INTERVAL = 1.0  # waiting re-reads the run at least this often (a run may finish in another process)
CANCEL_GRACE = 5.0  # how long cancel() waits for a running run to wind down before answering


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """The final state of a run, as :meth:`RunService.wait_outcome` gives it."""

    status: str
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None


def _now() -> datetime:
    return datetime.now(UTC)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "details": None}


class RunService:
    """Creates, executes, waits for and cancels runs. One per process, built by the app's lifespan."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        caller: OperationCaller,
        *,
        plans: PlanCache | None = None,
        secrets: RunSecrets | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._caller = caller
        self.plans = plans or PlanCache()
        self.secrets = secrets  # resolves a run's `secrets.*` at its start; None: runs see no secrets
        self.queue: RunQueue | None = None
        self._claim_lock = asyncio.Lock()
        self._cancel_events: dict[str, asyncio.Event] = {}
        self._pipeline_of: dict[str, str] = {}  # run id -> pipeline id, for runs executing here
        self._done: dict[str, asyncio.Event] = {}
        self._waiters: dict[str, int] = {}
        self._outcomes: dict[str, RunOutcome] = {}  # final states of runs someone waits for (wait_outcome)
        self.gate = PipelineGate()  # runs waiting for a slot of their pipeline (on_conflict: queue)
        self._unclaimed: set[str] = set()  # runs whose claim failed on an error: handed back by tend()
        self._freed: dict[str, int] = {}  # pipeline id -> runs of it finished here (wake-up bookkeeping)
        self.created = CreatedRuns()  # queued runs recorded here, handed to their claim (app.runtime.handoff)
        # Writes the runs recorded write-behind (published endpoint runs, app.runtime.direct_runs) that
        # are still pending, so that reading runs here sees them (read-your-writes in this process).
        self.write_behind: Callable[[], Awaitable[None]] | None = None

    @property
    def executing(self) -> frozenset[str]:
        """Ids of the runs this process is executing right now."""
        return frozenset(self._cancel_events)

    def _caller_for(self, account_id: str) -> OperationCaller:
        """The caller bound to the run's account (its connections), when the caller can be bound."""
        bind = getattr(self._caller, "for_account", None)
        return bind(account_id) if callable(bind) else self._caller

    async def settle(self) -> None:
        """Write the runs recorded write-behind and not written yet (before reading runs)."""
        if self.write_behind is not None:
            await self.write_behind()

    def caller_for(self, account_id: str) -> OperationCaller:
        """The operation caller of the account's runs (also used by :mod:`app.runtime.direct_runs`)."""
        return self._caller_for(account_id)

    def attach_queue(self, queue: RunQueue) -> None:
        """Where :meth:`submit` and :meth:`recover` send queued runs."""
        self.queue = queue

    # -- creating ---------------------------------------------------------------------------------

    async def create_run(
        self,
        *,
        account_id: str,
        pipeline_name: str,
        inputs: dict[str, Any],
        revision: int | None = None,
        trigger: dict[str, Any] | None = None,
        from_strings: bool = False,
        in_transaction: InTransaction | None = None,
    ) -> Run:
        """Record a run as ``queued`` (committed) after coercing its inputs; does not start it.

        ``NotFound`` for an unknown pipeline or revision; ``Unprocessable`` (with one detail per
        input problem) when the inputs do not fit the pipeline's declared inputs. ``in_transaction``
        (see :data:`InTransaction`) runs before the commit, in the same transaction.
        """
        async with self._db.session() as session:
            pipeline = await PipelineRepo(session).get(account_id, pipeline_name)
            if pipeline is None:
                raise NotFound(f"no pipeline named {pipeline_name!r}")
            number = pipeline.latest_revision if revision is None else revision
            spec = await revision_spec(session, self.plans, pipeline, number)
            coerced = coerce_inputs(spec, inputs, from_strings=from_strings)
            run = await record_run(
                session, pipeline, number, spec, inputs=coerced, trigger=trigger or {"kind": "manual"}
            )
            if in_transaction is not None:
                await in_transaction(session, run)
            await session.commit()
            self.created.add(run)  # its claim here needs not read it back
            return run

    async def submit(self, **kwargs: Any) -> Run:
        """Start a run: :meth:`create_run` (same arguments), then hand it to the queue.

        THE entry point of every run (manual, schedule, webhook, endpoint, poll). The run comes back
        ``queued``, or already finished when the pipeline's ``concurrency`` limit is reached with
        ``on_conflict: skip`` (``cancelled``, error ``concurrency_skipped``) or ``fail`` (``failed``,
        error ``concurrency_limit``): such a run is recorded, visible in the history, never started.
        """
        if self.queue is None:
            raise RuntimeError("no run queue attached to the run service")
        run = await self.create_run(**kwargs)
        if run.status == RunStatus.QUEUED.value:
            await self.queue.enqueue(run.id)
        return run

    async def retry(self, account_id: str, run_id: str) -> Run:
        """Re-run a failed or cancelled run from its first failed step, as a NEW run.

        The new run has the same revision, inputs and trigger, ``attempt`` + 1 and ``retry_of`` = the
        retried run; the steps that run ``succeeded`` (or skipped) are reused, not run again (see
        docs/run-semantics.md). It goes through the queue and the pipeline's concurrency limit like any
        run. ``NotFound`` for another account's run; ``Conflict`` for a run that succeeded or is still
        queued or running.
        """
        if self.queue is None:
            raise RuntimeError("no run queue attached to the run service")
        await self.settle()
        async with self._db.session() as session:
            run = await record_retry(session, self.plans, account_id, run_id)
            await session.commit()
        if run.status == RunStatus.QUEUED.value:
            await self.queue.enqueue(run.id)
        return run

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
                    caller=self._caller_for(run.account_id),
                    observer=MaskingObserver(observer, masker) if masker else observer,
                    cancel=cancel,
                )
            status = RunStatus(result.status).value
            outputs = masker.value(result.outputs)
            error = masker.value(result.error.to_dict()) if result.error is not None else None
            too_large = outputs_error(outputs, self._settings.run_outputs_max_bytes)
            if too_large is not None:
                status, outputs, error = RunStatus.FAILED.value, None, too_large
            if status not in FINISHED:
                status, error = (
                    RunStatus.FAILED.value,
                    _error("internal_error", f"the engine ended the run in state {status!r}"),
                )
        except asyncio.CancelledError:
            # The server is stopping: resume the run at the next start, or fail it, as for a crash.
            await asyncio.shield(self._interrupted(run, observer))
            raise
        except Exception as exc:
            with masking_scope(masker):
                logger.exception("run %s failed with an unexpected error", run_id)
            status, outputs = RunStatus.FAILED.value, None
            error = _error("internal_error", masker.text(f"the run failed: {type(exc).__name__}: {exc}"))
        await self._finish(run_id, status, outputs, error, observer)

    async def _claim(
        self, run_id: str, cancel: asyncio.Event
    ) -> tuple[Run, CompiledRevision | Exception, datetime, ResumeState] | None:
        """Mark the run running when it is still queued and its pipeline has a free slot; None when it
        does not start now (cancelled, gone, waiting for a slot, or refused by a skip/fail limit).

        Also gives the compiled revision (or the error compiling it, which fails the run) and, for a
        resumed or retried run, the step results to reuse."""
        async with self._claim_lock:
            try:
                async with self._db.session() as session:
                    handed = self.created.pop(run_id)  # created here: its row as written, not read back
                    run = handed.run() if handed is not None else await RunRepo(session).get_any(run_id)
                    if run is None or run.status != RunStatus.QUEUED.value:
                        await self._dropped(run_id)
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
                    now = _now()
                    repo = RuntimeRepo(session)
                    freed = self._freed.get(run.pipeline_id, 0)
                    outcome, started_at = await repo.claim_run(
                        run_id, now, pipeline_id=run.pipeline_id, limit=limit.limit if limit else None
                    )
                    if handed is not None and started_at is not None and started_at != now:
                        run.started_at = started_at  # started before (by a process that died): resumed
                    if outcome == "not_queued":
                        await self._dropped(run_id)
                        return None
                    if outcome == "at_limit":
                        assert limit is not None
                        if queueing:
                            self.gate.park(run.pipeline_id, run_id)
                            if self._freed.get(run.pipeline_id, 0) != freed:
                                await self._wake(run.pipeline_id)  # a run finished meanwhile: try again
                            return None
                        status, error = conflict_error(run.pipeline_name, limit)
                        await RunRepo(session).finish(run_id, status, None, error, now)
                        await session.commit()
                        self._notify(run_id)
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
                    return run, compiled, run.started_at or now, resume
            except Exception:
                logger.exception("run %s: could not be claimed; tried again shortly", run_id)
                self._unclaimed.add(run_id)
                return None

    async def _dropped(self, run_id: str) -> None:
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
            self._notify(run.id)
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
                await runs.finish(run_id, status, outputs, error, _now())
                await session.commit()
            if run_id in self._waiters:
                self._outcomes[run_id] = RunOutcome(status, outputs, error)
        except NotFound:
            logger.info("run %s is gone (pipeline deleted): its final state is not recorded", run_id)
        except Exception:
            logger.exception("run %s: could not record its final state %s", run_id, status)
        finally:
            self._notify(run_id)
            if pipeline_id is not None:
                self._freed[pipeline_id] = self._freed.get(pipeline_id, 0) + 1
                await self._wake(pipeline_id)

    # -- waiting and cancelling -------------------------------------------------------------------

    def _notify(self, run_id: str) -> None:
        event = self._done.pop(run_id, None)
        if event is not None:
            event.set()

    async def status(self, run_id: str) -> str | None:
        """The run's current status, or None when there is no such run."""
        async with self._db.session() as session:
            run = await RunRepo(session).get_any(run_id)
            return None if run is None else run.status

    async def wait(self, run_id: str, timeout: float) -> bool:  # noqa: ASYNC109 - a cap, not a scope
        """Wait until the run is finished or ``timeout`` seconds pass; True when it is finished."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        self._waiters[run_id] = self._waiters.get(run_id, 0) + 1
        try:
            while True:
                event = self._done.setdefault(run_id, asyncio.Event())
                status = await self.status(run_id)
                if status is None or status in FINISHED:
                    return status is not None
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, POLL_INTERVAL))
        finally:
            self._waiters[run_id] -= 1
            if not self._waiters[run_id]:
                del self._waiters[run_id]
                pending = self._done.get(run_id)
                if pending is not None and not pending.is_set():
                    del self._done[run_id]

    async def wait_outcome(
        self,
        run_id: str,
        timeout: float,  # noqa: ASYNC109 - a cap, not a scope
        *,
        started_here: bool = True,
    ) -> RunOutcome | None:
        """Wait until the run is finished and give its final state, or None when it is not finished after
        ``timeout`` seconds (or does not exist).

        A run finished by this process is given from memory, without reading the database (the published
        endpoints and ``?wait=true`` webhooks wait for every run they start); otherwise the run is read
        once it is finished, checking at least every ``POLL_INTERVAL`` (it may run in another process).
        ``started_here=False`` (a run submitted earlier, maybe finished long ago) reads it first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        self._waiters[run_id] = self._waiters.get(run_id, 0) + 1
        try:
            while True:
                event = self._done.setdefault(run_id, asyncio.Event())
                outcome = self._outcomes.get(run_id)
                if outcome is not None:
                    return outcome
                remaining = deadline - loop.time()
                if remaining > 0 and started_here:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), min(remaining, POLL_INTERVAL))
                    outcome = self._outcomes.get(run_id)
                    if outcome is not None:
                        return outcome
                async with self._db.session() as session:
                    run = await RunRepo(session).get_any(run_id)
                if run is None:
                    return None
                if run.status in FINISHED:
                    return RunOutcome(run.status, run.outputs, run.error)
                if deadline - loop.time() <= 0:
                    return None
                started_here = True
        finally:
            self._waiters[run_id] -= 1
            if not self._waiters[run_id]:
                del self._waiters[run_id]
                self._outcomes.pop(run_id, None)
                pending = self._done.get(run_id)
                if pending is not None and not pending.is_set():
                    del self._done[run_id]

    async def cancel(self, account_id: str, run_id: str) -> None:
        """Cancel a run: a queued one is cancelled at once, a running one is told to stop (and given a
        few seconds to do so). ``NotFound`` for another account's run; ``Conflict`` when finished."""
        await self.settle()
        async with self._claim_lock:
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
                        run_id, RunStatus.CANCELLED.value, None, _error("cancelled", message), _now()
                    )
                    await session.commit()
                    self._notify(run_id)
                    await self._dropped(run_id)
                    return
                event.set()
        await self.wait(run_id, CANCEL_GRACE)

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

    # -- recovery ---------------------------------------------------------------------------------

    async def recover(self) -> RecoveryReport:
        """At start-up: resume or fail the runs left ``running`` by a dead process (see
        :mod:`app.runtime.recovery`), then hand every ``queued`` run to the queue, oldest first (the
        resumed ones included), so none is dropped and each pipeline's order holds."""
        report = await recover_stale(
            self._db,
            self.plans,
            now=_now(),
            heartbeat_seconds=self._settings.run_heartbeat_seconds,
            exclude=self.executing,
        )
        async with self._db.session() as session:
            report.requeued = await RuntimeRepo(session).queued_ids()
        if self.queue is not None:
            for run_id in report.requeued:
                await self.queue.enqueue(run_id)
        if report.requeued:
            logger.info("recovery: %d queued run(s) handed to the queue", len(report.requeued))
        return report

    async def tend(self, now: datetime | None = None) -> RecoveryReport:
        """The periodic chore (every ``run_heartbeat_seconds``, :mod:`app.runtime.maintenance`): mark
        the runs executing here alive, resume or fail runs whose process died, and hand back runs that
        wait for a slot another process may have freed, or whose claim failed on an error."""
        now = now or _now()
        executing = self.executing
        if executing:
            async with self._db.session() as session:
                await RuntimeRepo(session).heartbeat(executing, now)
                await session.commit()
        report = await recover_stale(
            self._db,
            self.plans,
            now=now,
            heartbeat_seconds=self._settings.run_heartbeat_seconds,
            exclude=executing | self.executing,
        )
        if self.queue is not None:
            unclaimed, self._unclaimed = self._unclaimed, set()
            for run_id in [*report.resumed, *sorted(unclaimed)]:
                await self.queue.enqueue(run_id)
        for pipeline_id in self.gate.idle_pipelines():
            await self._wake(pipeline_id)
        return report

    # -- reading ----------------------------------------------------------------------------------

    async def read(self, account_id: str, run_id: str) -> tuple[Run, list[StepRun]]:
        """A run of the account with its steps; ``NotFound`` otherwise."""
        await self.settle()
        async with self._db.session() as session:
            runs = RunRepo(session)
            run = await runs.get(account_id, run_id)
            if run is None:
                raise NotFound(f"no run {run_id!r}")
            return run, list(await runs.steps(run_id))
