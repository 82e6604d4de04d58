"""The run service: records runs, executes them with the engine, waits for and cancels them.

:meth:`RunService.execute` is the one function that executes a run, whatever queue delivered its id:
it claims the run (queued → running), loads its revision's compiled plan, runs the engine with a
storage-backed observer, and always records a final state (any exception → failed, with the message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.engine.executor import execute as execute_plan
from app.engine.types import OperationCaller, RunRequest, RunStatus
from app.errors import Conflict, NotFound
from app.pipelines.inputs import coerce_inputs
from app.runtime.masking import Masker, MaskingObserver, masking_scope
from app.runtime.observer import StorageObserver
from app.runtime.plans import CompiledRevision, PlanCache, revision_key
from app.runtime.queue import RunQueue
from app.runtime.run_secrets import RunSecrets
from app.settings import Settings
from app.storage.db import Database
from app.storage.models import Run, StepRun
from app.storage.repositories import PipelineRepo, RunRepo

InTransaction = Callable[[AsyncSession, Run], Awaitable[None]]
"""Called with the session and the new run (flushed, not committed) in the transaction recording the run:
a trigger writes its own rows there (a schedule fire, a poll cursor, a webhook delivery) so that they and
the run are committed together or not at all. An exception (e.g. ``IntegrityError`` of a lost race) rolls
everything back and is raised to the caller of :meth:`RunService.submit`."""

logger = logging.getLogger("mashpipe.runtime")

FINISHED = frozenset({RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value})
POLL_INTERVAL = 1.0  # waiting re-reads the run at least this often (a run may finish in another process)
CANCEL_GRACE = 5.0  # how long cancel() waits for a running run to wind down before answering


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
            pipelines = PipelineRepo(session)
            pipeline = await pipelines.get(account_id, pipeline_name)
            if pipeline is None:
                raise NotFound(f"no pipeline named {pipeline_name!r}")
            number = pipeline.latest_revision if revision is None else revision
            key = revision_key(pipeline.id, number)
            spec = self.plans.cached_spec(key)
            if spec is None:
                rev = await pipelines.get_revision(pipeline.id, number)
                if rev is None:
                    raise NotFound(
                        f"pipeline {pipeline_name!r} has no revision {number} "
                        f"(latest is {pipeline.latest_revision})"
                    )
                spec = self.plans.spec(key, rev.spec)
            coerced = coerce_inputs(spec, inputs, from_strings=from_strings)
            run = await RunRepo(session).create(
                account_id=account_id,
                pipeline=pipeline,
                revision=number,
                inputs=coerced,
                trigger=trigger or {"kind": "manual"},
            )
            if in_transaction is not None:
                await in_transaction(session, run)
            await session.commit()
            return run

    async def submit(self, **kwargs: Any) -> Run:
        """:meth:`create_run`, then hand the run to the queue."""
        if self.queue is None:
            raise RuntimeError("no run queue attached to the run service")
        run = await self.create_run(**kwargs)
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
        run, compiled, started_at = claimed
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
            )
            with masking_scope(masker):
                result = await execute_plan(
                    compiled.plan,
                    request,
                    caller=self._caller,
                    observer=MaskingObserver(observer, masker) if masker else observer,
                    cancel=cancel,
                )
            status = RunStatus(result.status).value
            outputs = masker.value(result.outputs)
            error = masker.value(result.error.to_dict()) if result.error is not None else None
            if status not in FINISHED:
                status, error = (
                    RunStatus.FAILED.value,
                    _error("internal_error", f"the engine ended the run in state {status!r}"),
                )
        except asyncio.CancelledError:
            interrupted = _error("interrupted", "the server stopped while the run was in progress")
            await asyncio.shield(self._finish(run_id, RunStatus.FAILED.value, None, interrupted, observer))
            raise
        except Exception as exc:
            with masking_scope(masker):
                logger.exception("run %s failed with an unexpected error", run_id)
            status, outputs = RunStatus.FAILED.value, None
            error = _error("internal_error", masker.text(f"the run failed: {type(exc).__name__}: {exc}"))
        await self._finish(run_id, status, outputs, error, observer)

    async def _claim(
        self, run_id: str, cancel: asyncio.Event
    ) -> tuple[Run, CompiledRevision | Exception, datetime] | None:
        """Mark the run running when it is still queued; None when it is not (cancelled, gone...).

        Also gives the compiled revision (or the error compiling it, which fails the run)."""
        async with self._claim_lock:
            try:
                async with self._db.session() as session:
                    runs = RunRepo(session)
                    run = await runs.get_any(run_id)
                    if run is None or run.status != RunStatus.QUEUED.value:
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
                    started_at = _now()
                    if not await runs.mark_running(run_id, started_at):
                        return None
                    await session.commit()
                    self._cancel_events[run_id] = cancel
                    self._pipeline_of[run_id] = run.pipeline_id
                    return run, compiled, started_at
            except Exception:
                logger.exception("run %s: could not be claimed", run_id)
                return None

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
        self._pipeline_of.pop(run_id, None)
        try:
            steps = await observer.drain() if observer is not None else []
            async with self._db.session() as session:
                runs = RunRepo(session)
                await runs.upsert_steps(run_id, steps, self._settings.step_output_max_bytes)
                await runs.finish(run_id, status, outputs, error, _now())
                await session.commit()
        except NotFound:
            logger.info("run %s is gone (pipeline deleted): its final state is not recorded", run_id)
        except Exception:
            logger.exception("run %s: could not record its final state %s", run_id, status)
        finally:
            self._notify(run_id)

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

    async def cancel(self, account_id: str, run_id: str) -> None:
        """Cancel a run: a queued one is cancelled at once, a running one is told to stop (and given a
        few seconds to do so). ``NotFound`` for another account's run; ``Conflict`` when finished."""
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

    async def recover(self) -> tuple[int, int]:
        """At start-up: fail runs left ``running`` by a dead process, re-enqueue runs left ``queued``.

        Returns ``(failed, requeued)``.
        """
        failed: list[str] = []
        queued: list[str] = []
        async with self._db.session() as session:
            runs = RunRepo(session)
            for run in await runs.unfinished():
                if run.status == RunStatus.RUNNING.value and run.id not in self._cancel_events:
                    await runs.finish(
                        run.id,
                        RunStatus.FAILED.value,
                        None,
                        _error(
                            "interrupted",
                            "the process executing this run stopped before it finished (restart or crash)",
                        ),
                        _now(),
                    )
                    failed.append(run.id)
                elif run.status == RunStatus.QUEUED.value:
                    queued.append(run.id)
            await session.commit()
        if queued and self.queue is not None:
            for run_id in queued:
                await self.queue.enqueue(run_id)
        if failed or queued:
            logger.info(
                "recovery: %d interrupted run(s) marked failed, %d queued run(s) re-enqueued",
                len(failed),
                len(queued),
            )
        return len(failed), len(queued)

    # -- reading ----------------------------------------------------------------------------------

    async def read(self, account_id: str, run_id: str) -> tuple[Run, list[StepRun]]:
        """A run of the account with its steps; ``NotFound`` otherwise."""
        async with self._db.session() as session:
            runs = RunRepo(session)
            run = await runs.get(account_id, run_id)
            if run is None:
                raise NotFound(f"no run {run_id!r}")
            return run, list(await runs.steps(run_id))
