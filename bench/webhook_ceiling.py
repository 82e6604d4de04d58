"""How fast can this machine record runs in the embedded SQLite database, by three write paths?

The webhook target is about recording (1,000 runs/s). This measures, in this process, on a fresh
migrated SQLite file (WAL, the server's connection settings), ``count`` run rows written:

* ``RunService.create_run``: what a delivery does today (a session per run: the pipeline read, the
  ORM insert, the commit);
* one Core ``INSERT`` per transaction (no ORM, still a commit per run);
* Core ``INSERT`` of ``batch`` rows per transaction (``executemany``): a group commit, what a
  write path collecting the deliveries of the last millisecond would do.

The rows are the same in the three cases (queued runs of one pipeline, inputs and trigger as JSON).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HOOK_PIPELINE = """\
version: 1
name: bench-ceiling
steps:
  - id: event
    uses: core.set
    with: {value: "${{ trigger.body }}"}
outputs: {event: "${{ steps.event.output }}"}
"""


@dataclass(frozen=True, slots=True)
class Ceiling:
    """Runs recorded per second by each write path."""

    service: float
    core_each: float
    core_batched: float
    batch: int


async def measure(count: int = 2_000, batch: int = 50) -> Ceiling:
    """Record ``count`` runs by each path on a fresh SQLite file; the rates."""
    from app.engine.types import RunStatus
    from app.runtime.service import RunService
    from app.settings import Settings
    from app.storage.base import new_id
    from app.storage.db import Database
    from app.storage.models import Run
    from app.storage.repositories import AccountRepo, PipelineRepo
    from bench.engine_host import NoConnectors
    from bench.workload import load_spec

    with tempfile.TemporaryDirectory(prefix="mashpipe-bench-ceiling-") as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'ceiling.db'}"
        db = Database(url)
        try:
            await db.upgrade()
            spec = load_spec(HOOK_PIPELINE)
            async with db.session() as session:
                account = await AccountRepo(session).create("bench")
                document = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
                pipeline, _ = await PipelineRepo(session).create(
                    account.id, spec.name, HOOK_PIPELINE, document
                )
                await session.commit()
            service = RunService(db, Settings(database_url=url), NoConnectors())
            trigger: dict[str, Any] = {
                "kind": "webhook",
                "body": {"kind": "bench", "number": 1},
                "headers": {},
            }

            started = time.perf_counter()
            for _ in range(count):
                await service.create_run(
                    account_id=account.id, pipeline_name=spec.name, inputs={}, trigger=trigger
                )
            service_rate = count / (time.perf_counter() - started)

            def row() -> dict[str, Any]:
                return {
                    "id": new_id(),
                    "account_id": account.id,
                    "pipeline_id": pipeline.id,
                    "pipeline_name": spec.name,
                    "revision": 1,
                    "status": RunStatus.QUEUED.value,
                    "trigger_kind": "webhook",
                    "trigger": trigger,
                    "inputs": {},
                    "created_at": datetime.now(UTC),
                    "attempt": 1,
                }

            table: Any = Run.__table__
            insert = table.insert()
            started = time.perf_counter()
            for _ in range(count):
                async with db.engine.begin() as connection:
                    await connection.execute(insert, [row()])
            each_rate = count / (time.perf_counter() - started)

            started = time.perf_counter()
            for _ in range(count // batch):
                async with db.engine.begin() as connection:
                    await connection.execute(insert, [row() for _ in range(batch)])
            batched_rate = (count // batch) * batch / (time.perf_counter() - started)
        finally:
            await db.dispose()
    return Ceiling(service_rate, each_rate, batched_rate, batch)
