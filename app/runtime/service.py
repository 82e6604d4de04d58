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

The service is the facade of three parts, each in its own module:

- recording runs (``create_run``, ``submit``, ``retry``), recovery and reading: here;
- executing them (claim, engine, final state, cancellation, the pipelines' gate):
  :class:`app.runtime.run_execution.RunExecutor`;
- waiting for them (``wait``, ``wait_outcome``, ``status``): :class:`app.runtime.run_waits.RunWaits`;

with the values they share (``FINISHED``, ``now()``, ``error_dict()``) in :mod:`app.runtime.run_values`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.engine.types import OperationCaller, RunStatus
from app.errors import NotFound
from app.pipelines.inputs import coerce_inputs
from app.runtime import run_values
from app.runtime.admission import record_retry, record_run, revision_spec
from app.runtime.handoff import CreatedRuns
from app.runtime.limits import PipelineGate
from app.runtime.plans import PlanCache
from app.runtime.queue import RunQueue
from app.runtime.recovery import RecoveryReport, recover_stale
from app.runtime.run_execution import RunExecutor
from app.runtime.run_secrets import RunSecrets
from app.runtime.run_values import FINISHED
from app.runtime.run_waits import POLL_INTERVAL, RunOutcome, RunWaits
from app.settings import Settings
from app.storage.db import Database
from app.storage.models import Run, StepRun
from app.storage.repositories import PipelineRepo, RunRepo, RuntimeRepo

__all__ = [
    "CANCEL_GRACE",
    "FINISHED",
    "POLL_INTERVAL",
    "InTransaction",
    "RunOutcome",
    "RunService",
]

InTransaction = Callable[[AsyncSession, Run], Awaitable[None]]
"""Called with the session and the new run (flushed, not committed) in the transaction recording the run:
a trigger writes its own rows there (a schedule fire, a poll cursor, a webhook delivery) so that they and
the run are committed together or not at all. An exception (e.g. ``IntegrityError`` of a lost race) rolls
everything back and is raised to the caller of :meth:`RunService.submit`."""

logger = logging.getLogger("mashpipe.runtime")

CANCEL_GRACE = 5.0  # how long cancel() waits for a running run to wind down before answering


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
        self._waits = RunWaits(db)
        self._executor = RunExecutor(
            db,
            settings,
            caller,
            self._waits,
            plans=plans or PlanCache(),
            secrets=secrets,
            created=CreatedRuns(),
        )
        # Writes the runs recorded write-behind (published endpoint runs, app.runtime.direct_runs) that
        # are still pending, so that reading runs here sees them (read-your-writes in this process).
        self.write_behind: Callable[[], Awaitable[None]] | None = None

    # -- the parts' state, as the service shows it --------------------------------------------------

    @property
    def plans(self) -> PlanCache:
        """The compiled plans of pipeline revisions (shared with the endpoint runs)."""
        return self._executor.plans

    @property
    def secrets(self) -> RunSecrets | None:
        """Resolves a run's ``secrets.*`` at its start; None: runs see no secrets."""
        return self._executor.secrets

    @secrets.setter
    def secrets(self, secrets: RunSecrets | None) -> None:
        self._executor.secrets = secrets

    @property
    def queue(self) -> RunQueue | None:
        """Where queued runs are sent (:meth:`attach_queue`); None until one is attached."""
        return self._executor.queue

    @queue.setter
    def queue(self, queue: RunQueue | None) -> None:
        self._executor.queue = queue

    @property
    def gate(self) -> PipelineGate:
        """Runs waiting for a slot of their pipeline (``on_conflict: queue``)."""
        return self._executor.gate

    @property
    def created(self) -> CreatedRuns:
        """Queued runs recorded here, handed to their claim (:mod:`app.runtime.handoff`)."""
        return self._executor.created

    @property
    def executing(self) -> frozenset[str]:
        """Ids of the runs this process is executing right now."""
        return self._executor.executing

    @property
    def _outcomes(self) -> dict[str, RunOutcome]:
        """Final states kept for the runs someone waits for (:meth:`wait_outcome`)."""
        return self._waits.outcomes

    def _caller_for(self, account_id: str) -> OperationCaller:
        """The caller bound to the run's account (its connections), when the caller can be bound."""
        return self._executor.caller_for(account_id)

    async def settle(self) -> None:
        """Write the runs recorded write-behind and not written yet (before reading runs)."""
        if self.write_behind is not None:
            await self.write_behind()

    def caller_for(self, account_id: str) -> OperationCaller:
        """The operation caller of the account's runs (also used by :mod:`app.runtime.direct_runs`)."""
        return self._executor.caller_for(account_id)

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

    # -- executing (app.runtime.run_execution) ------------------------------------------------------

    async def execute(self, run_id: str) -> None:
        """Execute a queued run to its end (:meth:`RunExecutor.execute`). Never raises (except on
        cancellation of the task itself) and never leaves the run ``running``."""
        await self._executor.execute(run_id)

    # -- waiting and cancelling (app.runtime.run_waits) ---------------------------------------------

    async def status(self, run_id: str) -> str | None:
        """The run's current status, or None when there is no such run."""
        return await self._waits.status(run_id)

    async def wait(self, run_id: str, timeout: float) -> bool:  # noqa: ASYNC109 - a cap, not a scope
        """Wait until the run is finished or ``timeout`` seconds pass; True when it is finished."""
        return await self._waits.wait(run_id, timeout)

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
        return await self._waits.wait_outcome(run_id, timeout, started_here=started_here)

    async def cancel(self, account_id: str, run_id: str) -> None:
        """Cancel a run: a queued one is cancelled at once, a running one is told to stop (and given a
        few seconds to do so). ``NotFound`` for another account's run; ``Conflict`` when finished."""
        await self.settle()
        if await self._executor.cancel(account_id, run_id):
            await self.wait(run_id, CANCEL_GRACE)

    def stop_pipeline_runs(self, pipeline_id: str) -> int:
        """Tell the runs of a pipeline executing in this process to stop (the pipeline is being
        deleted); returns how many were told."""
        return self._executor.stop_pipeline_runs(pipeline_id)

    # -- recovery ---------------------------------------------------------------------------------

    async def recover(self) -> RecoveryReport:
        """At start-up: resume or fail the runs left ``running`` by a dead process (see
        :mod:`app.runtime.recovery`), then hand every ``queued`` run to the queue, oldest first (the
        resumed ones included), so none is dropped and each pipeline's order holds."""
        report = await recover_stale(
            self._db,
            self.plans,
            now=run_values.now(),
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
        now = now or run_values.now()
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
        await self._executor.hand_back(report.resumed)
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
            return run, list(await runs.steps_of(run))
