"""Group commit of webhook deliveries: the runs of deliveries arriving together, in ONE transaction.

A delivery is durable when it is answered (202 means recorded), so each one waits for a commit; committing
each alone costs a transaction (and, on SQLite, the write lock) per delivery. :class:`DeliveryBatcher`
collects the deliveries that arrive together and records them in one transaction, flushed when
``max_batch`` are pending or ``delay`` seconds after the first one:

1. deliveries of the batch with the same ``(hook, dedupe key)``: only the first one gets a run, the
   others answer as redeliveries of it;
2. the runs are inserted with one prepared Core statement (executemany), then their delivery rows with
   ``INSERT .. ON CONFLICT DO NOTHING RETURNING``: a delivery whose key the table already holds (a
   redelivery, or a concurrent one recorded by another process) loses only its own run (deleted in the
   same transaction) and answers with the first run's id;
3. the commit; then every waiter gets its :class:`Recorded`.

When the database stays locked the batch is retried (:data:`~app.runtime.webhooks.BUSY_RETRIES`), then
each waiter gets :class:`~app.runtime.webhooks.StorageBusy`; any other error of the batch (e.g. the
pipeline was deleted meanwhile) is given to each waiter, which then records its run alone, the slow and
exact way. At shutdown (:meth:`DeliveryBatcher.close`) the pending deliveries are written first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from app.engine.types import RunStatus
from app.errors import MashpipeError
from app.storage.base import new_id, utcnow
from app.storage.db import Database
from app.storage.models import Run
from app.storage.models_hooks import WebhookDelivery

logger = logging.getLogger("mashpipe.webhooks")

BATCH_RETRIES = (0.05, 0.2, 0.5)
"""Waits before retrying a batch that could not be written because SQLite was locked by other writers."""


class BatcherClosed(MashpipeError):
    """503: the server is stopping; the delivery was not recorded and may be retried."""

    status = 503
    code = "busy"


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to record: its run (a queued run of the pipeline at ``revision``) and its dedupe key."""

    hook_id: str
    account_id: str
    pipeline_id: str
    pipeline_name: str
    revision: int
    trigger: dict[str, Any]
    inputs: dict[str, Any]
    dedupe_key: str | None


@dataclass(frozen=True, slots=True)
class Recorded:
    """What was recorded for a delivery: its new run, or (``duplicate``) the run of an earlier one."""

    run_id: str
    duplicate: bool


@dataclass(slots=True)
class _Pending:
    delivery: NewDelivery
    future: asyncio.Future[Recorded] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


class DeliveryBatcher:
    """Records webhook deliveries in group-committed batches (see the module)."""

    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = 128,
        delay: float = 0.002,
        on_commit: Callable[[list[str]], Awaitable[None]] | None = None,
    ) -> None:
        self._db = db
        self._on_commit = on_commit  # given the new runs' ids after each commit (the webhooks queue them)
        self.max_batch = max(1, max_batch)
        self.delay = max(0.0, delay)
        self._pending: list[_Pending] = []
        self._ready = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0  # transactions written so far (for tests and measurements)
        self._statements: dict[str, tuple[Any, Any]] = {}

    async def record(self, delivery: NewDelivery) -> Recorded:
        """Record the delivery's run (and its dedupe row) in the next batch; returns after the commit."""
        if self._closed:
            raise BatcherClosed("the server is stopping; nothing was recorded, retry the call")
        pending = _Pending(delivery)
        self._pending.append(pending)
        self._ready.set()
        if len(self._pending) >= self.max_batch:
            self._full.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="mashpipe-delivery-batcher")
        return await asyncio.shield(pending.future)

    async def close(self) -> None:
        """Refuse new deliveries and write the pending ones (their callers get their answers)."""
        self._closed = True
        self._full.set()
        task = self._task
        if task is not None and not task.done():
            await task
        if self._pending:  # the task died (it never does by design): write what is left, here
            await self._write(self._take())

    def _take(self) -> list[_Pending]:
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        if not self._pending:
            self._ready.clear()
        if len(self._pending) < self.max_batch:
            self._full.clear()
        return batch

    async def _run(self) -> None:
        while self._pending:
            if not self._closed and len(self._pending) < self.max_batch and self.delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.delay)
            await self._write(self._take())

    async def _write(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        for wait in (*BATCH_RETRIES, None):
            try:
                results = await self._transaction([item.delivery for item in batch])
            except OperationalError as exc:
                if "database is locked" in str(exc) and wait is not None:
                    logger.info("recording %d deliveries: the database is locked, retrying", len(batch))
                    await asyncio.sleep(wait)
                    continue
                self._fail(batch, exc)
                return
            except Exception as exc:
                self._fail(batch, exc)
                return
            self.batches += 1
            if self._on_commit is not None:
                try:
                    await self._on_commit([result.run_id for result in results if not result.duplicate])
                except Exception:  # the runs are recorded queued: a restart's recovery starts them
                    logger.exception("the runs of a batch of deliveries could not be queued")
            for item, result in zip(batch, results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)
            return

    @staticmethod
    def _fail(batch: list[_Pending], exc: BaseException) -> None:
        for item in batch:
            if not item.future.done():
                item.future.set_exception(exc)

    def _prepared(self, dialect: str) -> tuple[Any, Any]:
        """The two statements of a batch, built once per dialect (SQLAlchemy caches their compiled form)."""
        statements = self._statements.get(dialect)
        if statements is None:
            runs = _insert(dialect)(Run.__table__)
            table = WebhookDelivery.__table__
            deliveries = (
                _insert(dialect)(table)
                .on_conflict_do_nothing(index_elements=[table.c.hook_id, table.c.dedupe_key])
                .returning(table.c.hook_id, table.c.dedupe_key)
            )
            statements = (runs, deliveries)
            self._statements[dialect] = statements
        return statements

    async def _transaction(self, batch: list[NewDelivery]) -> list[Recorded]:
        """Insert the batch's runs and delivery rows in one transaction; the outcome of each delivery."""
        now = utcnow()
        first: dict[tuple[str, str], str] = {}  # (hook, key) -> run id of the first delivery with it
        run_ids: list[str] = []
        run_rows: list[dict[str, Any]] = []
        delivery_rows: list[dict[str, Any]] = []
        for delivery in batch:
            key = (delivery.hook_id, delivery.dedupe_key) if delivery.dedupe_key is not None else None
            if key is not None and key in first:
                run_ids.append(first[key])  # a duplicate within the batch: no run of its own
                continue
            run_id = new_id()
            run_ids.append(run_id)
            run_rows.append(
                {
                    "id": run_id,
                    "account_id": delivery.account_id,
                    "pipeline_id": delivery.pipeline_id,
                    "pipeline_name": delivery.pipeline_name,
                    "revision": delivery.revision,
                    "status": RunStatus.QUEUED.value,
                    "trigger_kind": str(delivery.trigger.get("kind", "webhook"))[:32],
                    "trigger": delivery.trigger,
                    "inputs": delivery.inputs,
                    "created_at": now,
                    "attempt": 1,
                }
            )
            if key is not None:
                first[key] = run_id
                delivery_rows.append(
                    {
                        "id": new_id(),
                        "hook_id": delivery.hook_id,
                        "dedupe_key": delivery.dedupe_key,
                        "run_id": run_id,
                        "created_at": now,
                    }
                )
        earlier: dict[tuple[str, str], str] = {}
        async with self._db.session() as session:
            insert_runs, insert_deliveries = self._prepared(session.get_bind().dialect.name)
            await session.execute(insert_runs, run_rows)
            if delivery_rows:
                inserted = await session.execute(insert_deliveries, delivery_rows)
                won = {(row[0], row[1]) for row in inserted}
                lost = [key for key in first if key not in won]
                if lost:  # recorded before: drop the new runs, answer with the earlier ones
                    await session.execute(delete(Run).where(Run.id.in_([first[key] for key in lost])))
                    table = WebhookDelivery.__table__.c
                    found = await session.execute(
                        select(table.hook_id, table.dedupe_key, table.run_id).where(
                            tuple_(table.hook_id, table.dedupe_key).in_(lost)
                        )
                    )
                    earlier = {(row[0], row[1]): row[2] for row in found}
                    if any(key not in earlier for key in lost):  # deleted meanwhile: record them alone
                        raise RuntimeError("a delivery row changed while the batch was written")
            await session.commit()
        results: list[Recorded] = []
        created: set[str] = set()
        for delivery, run_id in zip(batch, run_ids, strict=True):
            key = (delivery.hook_id, delivery.dedupe_key) if delivery.dedupe_key is not None else None
            if key is not None and key in earlier:
                results.append(Recorded(earlier[key], duplicate=True))
            elif run_id in created:
                results.append(Recorded(run_id, duplicate=True))
            else:
                created.add(run_id)
                results.append(Recorded(run_id, duplicate=False))
        return results


__all__ = ["BatcherClosed", "DeliveryBatcher", "NewDelivery", "Recorded"]
