"""RunService.wait_outcome: the final state of a run from memory when it finished here, else read."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event

from app.engine.types import OperationCall
from app.runtime.service import RunOutcome, RunService

PIPELINE = """\
version: 1
name: numbers
steps:
  - id: all
    uses: core.set
    with: {value: [5, 3, 9]}
outputs:
  all: ${{ steps.all.output }}
"""

FAILING = """\
version: 1
name: failing
steps:
  - id: boom
    uses: core.fail
    with: {message: nope}
"""


class NoCalls:
    async def __call__(self, call: OperationCall) -> Any:
        raise AssertionError(f"unexpected connector call {call.uses}")


class ManualQueue:
    """Keeps the runs until the test executes them."""

    def __init__(self) -> None:
        self.enqueued: list[str] = []

    async def enqueue(self, run_id: str) -> None:
        self.enqueued.append(run_id)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


@pytest.fixture
def service(db, make_settings) -> RunService:
    svc = RunService(db, make_settings(), NoCalls())
    svc.attach_queue(ManualQueue())
    return svc


def count_run_reads(db) -> list[str]:
    reads: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM runs" in statement:
            reads.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    return reads


async def test_a_run_finished_here_is_given_from_memory(service, db, account_id, save_pipeline):
    await save_pipeline(PIPELINE)
    run = await service.submit(account_id=account_id, pipeline_name="numbers", inputs={})
    waiter = asyncio.ensure_future(service.wait_outcome(run.id, 30))
    await asyncio.sleep(0)
    await service.execute(run.id)
    reads = count_run_reads(db)
    outcome = await waiter
    assert outcome == RunOutcome("succeeded", {"all": [5, 3, 9]}, None)
    assert reads == []  # handed over in memory: the run is not read again
    assert service._outcomes == {}  # nothing kept once nobody waits


async def test_a_failed_run_gives_its_error(service, account_id, save_pipeline):
    await save_pipeline(FAILING)
    run = await service.submit(account_id=account_id, pipeline_name="failing", inputs={})
    waiter = asyncio.ensure_future(service.wait_outcome(run.id, 30))
    await asyncio.sleep(0)
    await service.execute(run.id)
    outcome = await waiter
    assert outcome is not None
    assert outcome.status == "failed"
    assert outcome.outputs is None
    assert "nope" in outcome.error["message"]


async def test_a_run_finished_earlier_is_read(service, account_id, save_pipeline):
    await save_pipeline(PIPELINE)
    run = await service.submit(account_id=account_id, pipeline_name="numbers", inputs={})
    await service.execute(run.id)  # nobody waited: nothing kept in memory
    outcome = await service.wait_outcome(run.id, 30, started_here=False)
    assert outcome == RunOutcome("succeeded", {"all": [5, 3, 9]}, None)


async def test_an_unfinished_run_after_the_cap_and_an_unknown_run_give_none(
    service, account_id, save_pipeline
):
    await save_pipeline(PIPELINE)
    run = await service.submit(account_id=account_id, pipeline_name="numbers", inputs={})
    assert await service.wait_outcome(run.id, 0) is None  # still queued: never executed
    assert await service.wait_outcome("0" * 32, 0) is None
    assert await service.wait_outcome("0" * 32, 0, started_here=False) is None
