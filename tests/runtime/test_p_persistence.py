"""The cheaper persistence path of a run: what it writes and reads is what the plain path wrote and read.

* a run created by this process is claimed from the handoff (no read back), with the inputs and
  trigger a database read gives; a run started meanwhile by a process that died is still resumed;
* the step writer's first batch waits a little: a short run writes its steps once, at its end, and
  never waits for that delay; a long run still shows its running steps;
* the prepared statements (create, claim, final state, step upserts) keep the repository's contract.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from app.engine.types import OperationCall, StepResult, StepStatus
from app.errors import NotFound
from app.runtime.handoff import CreatedRuns
from app.runtime.observer import StorageObserver
from app.runtime.service import RunService
from app.storage.models import Run
from app.storage.repositories import PipelineRepo, RunRepo, RuntimeRepo
from app.storage.repositories.runs import stored_json
from app.storage.types import dumps_json

PIPELINE = """\
version: 1
name: echo
inputs:
  items: {type: array}
  label: {type: string, default: "x"}
steps:
  - id: first
    uses: core.set
    with: {value: "${{ inputs.items }}"}
  - id: count
    uses: core.set
    with: {value: "${{ size(steps.first.output) }}"}
outputs:
  items: ${{ steps.first.output }}
  count: ${{ steps.count.output }}
  label: ${{ inputs.label }}
"""

ODD_INPUTS: dict[str, Any] = {
    "items": [
        {"big": 123456789012345678901234567890, "float": 0.1, "neg": -0.0, "e": "é\u2028", "n": None},
        [1.5e300, 18446744073709551615, {"nested": [True, False]}],
        "text",
    ],
    "label": "odd",
}


class NoCalls:
    async def __call__(self, call: OperationCall) -> Any:
        raise AssertionError(f"unexpected connector call {call.uses}")


@pytest.fixture
def service(db, make_settings) -> RunService:
    return RunService(db, make_settings(), NoCalls())


async def read_back(db, run_id: str) -> Run:
    async with db.session() as session:
        run = await RunRepo(session).get_any(run_id)
        assert run is not None
        return run


async def test_a_run_created_here_is_claimed_from_the_handoff_with_the_stored_values(
    service, db, account_id, save_pipeline
):
    await save_pipeline(PIPELINE)
    run = await service.create_run(
        account_id=account_id, pipeline_name="echo", inputs=ODD_INPUTS, trigger={"kind": "manual", "k": 1}
    )
    entry = service.created.pop(run.id)
    assert entry is not None
    stored = await read_back(db, run.id)
    handed = entry.run()
    for name in ("id", "account_id", "pipeline_id", "pipeline_name", "revision", "status", "attempt"):
        assert getattr(handed, name) == getattr(stored, name), name
    # decoded from the text the row holds: exactly what a read gives (big integers, floats, -0.0...)
    assert repr(handed.inputs) == repr(stored.inputs)
    assert repr(handed.trigger) == repr(stored.trigger)
    assert entry.inputs_json == dumps_json(stored.inputs)


async def test_a_handed_run_executes_like_a_read_one(service, db, account_id, save_pipeline):
    await save_pipeline(PIPELINE)
    here = await service.create_run(account_id=account_id, pipeline_name="echo", inputs=ODD_INPUTS)
    read = await service.create_run(account_id=account_id, pipeline_name="echo", inputs=ODD_INPUTS)
    assert service.created.pop(read.id) is not None  # as if another process had created it
    assert len(service.created) == 1
    await service.execute(here.id)
    await service.execute(read.id)
    assert len(service.created) == 0
    first, second = await read_back(db, here.id), await read_back(db, read.id)
    assert first.status == second.status == "succeeded"
    assert first.outputs == second.outputs
    assert first.outputs is not None
    assert first.outputs["count"] == 3
    assert first.started_at is not None


async def test_a_handed_run_started_by_a_dead_process_is_still_resumed(
    service, db, account_id, save_pipeline
):
    await save_pipeline(PIPELINE)
    run = await service.create_run(account_id=account_id, pipeline_name="echo", inputs={"items": [1, 2]})
    earlier = datetime.now(UTC) - timedelta(hours=1)
    async with db.session() as session:  # another process claimed it, wrote a step, died; it was requeued
        await session.execute(update(Run).where(Run.id == run.id).values(started_at=earlier))
        await RunRepo(session).upsert_steps(
            run.id,
            [
                StepResult(
                    step_id="first",
                    status=StepStatus.SUCCEEDED,
                    attempts=1,
                    started_at=earlier,
                    finished_at=earlier,
                    output=[1, 2],
                )
            ],
            10_000,
        )
        await session.commit()
    await service.execute(run.id)
    stored = await read_back(db, run.id)
    assert stored.status == "succeeded"
    assert stored.started_at == earlier  # its first start is kept, as for any resumed run
    async with db.session() as session:
        steps = {step.step_id: step for step in await RunRepo(session).steps(run.id)}
    assert steps["first"].started_at == earlier  # the step done before the crash was reused, not run again


async def test_a_handed_run_cancelled_meanwhile_does_not_start(service, db, account_id, save_pipeline):
    await save_pipeline(PIPELINE)
    run = await service.create_run(account_id=account_id, pipeline_name="echo", inputs={"items": []})
    await service.cancel(account_id, run.id)
    await service.execute(run.id)
    stored = await read_back(db, run.id)
    assert stored.status == "cancelled"
    assert stored.started_at is None


def test_created_runs_are_bounded_in_number_and_bytes() -> None:
    def run(run_id: str, text: str = "x", status: str = "queued") -> Run:
        return Run(
            id=run_id,
            account_id="a",
            pipeline_id="p",
            pipeline_name="n",
            revision=1,
            status=status,
            trigger_kind="manual",
            trigger={"kind": "manual"},
            inputs={"t": text},
            created_at=datetime.now(UTC),
            attempt=1,
            retry_of=None,
        )

    created = CreatedRuns(max_runs=2, max_bytes=200)
    for run_id in ("r1", "r2", "r3"):
        created.add(run(run_id))
    assert len(created) == 2
    assert created.pop("r1") is None  # the oldest went first
    assert created.pop("r3") is not None
    assert created.pop("r3") is None  # popped once
    created.add(run("big", "y" * 500))  # larger than the byte budget: not kept
    assert created.pop("big") is None
    created.add(run("done", status="cancelled"))  # only queued runs are handed over
    assert created.pop("done") is None
    assert CreatedRuns(max_runs=0).pop("r") is None


async def test_repository_create_leaves_the_run_persistent_as_written(db, account_id, save_pipeline):
    await save_pipeline(PIPELINE)
    async with db.session() as session:
        pipeline = await PipelineRepo(session).get(account_id, "echo")
        assert pipeline is not None
        runs = RunRepo(session)
        run = await runs.create(
            account_id=account_id, pipeline=pipeline, revision=1, inputs=ODD_INPUTS, trigger={"kind": "x"}
        )
        assert session.identity_key(Run, run.id) in session.identity_map
        assert stored_json(run) == (dumps_json(ODD_INPUTS), dumps_json({"kind": "x"}))
        # finishing it in the same session refreshes the object (what admission relies on)
        assert await runs.finish(run.id, "failed", None, {"code": "c", "message": "m"}, datetime.now(UTC))
        assert run.status == "failed"
        await session.commit()
    # every column was loaded: reading them after the session is closed needs no database
    assert run.outputs is None
    assert run.heartbeat_at is None
    assert run.inputs == ODD_INPUTS
    stored = await read_back(db, run.id)
    assert stored.status == "failed"
    assert stored_json(stored) is None  # a run read from the database has no written text


async def test_prepared_final_update_and_claim_keep_their_contract(db, account_id, save_pipeline, service):
    await save_pipeline(PIPELINE)
    run = await service.create_run(account_id=account_id, pipeline_name="echo", inputs={"items": []})
    now = datetime.now(UTC)
    async with db.session() as session:
        repo = RuntimeRepo(session)
        assert await repo.claim_run(run.id, now) == ("claimed", now)
        assert await repo.claim_run(run.id, now) == ("not_queued", None)
        await session.commit()
    async with db.session() as session:
        runs = RunRepo(session)
        assert await runs.finish(run.id, "succeeded", {"a": [1]}, None, now) is True
        assert await runs.finish(run.id, "failed", None, None, now) is False  # already finished
        assert await runs.mark_running(run.id, now) is False
        assert await runs.finish("0" * 32, "failed", None, None, now) is False
        await session.commit()
    stored = await read_back(db, run.id)
    assert (stored.status, stored.outputs, stored.finished_at) == ("succeeded", {"a": [1]}, now)


async def test_step_upserts_last_state_wins_and_a_missing_run_is_not_found(
    db, account_id, service, save_pipeline
):
    await save_pipeline(PIPELINE)
    run = await service.create_run(account_id=account_id, pipeline_name="echo", inputs={"items": []})
    running = StepResult(step_id="s", status=StepStatus.RUNNING, attempts=1)
    done = StepResult(step_id="s", status=StepStatus.SUCCEEDED, attempts=2, output={"x": [1, "é"]})
    async with db.session() as session:
        await RunRepo(session).upsert_steps(run.id, [running, done], 10_000)
        await RunRepo(session).upsert_steps(run.id, [], 10_000)
        await session.commit()
    async with db.session() as session:
        (step,) = await RunRepo(session).steps(run.id)
    assert (step.status, step.attempts, step.output, step.output_truncated) == (
        "succeeded",
        2,
        {"x": [1, "é"]},
        False,
    )
    async with db.session() as session:
        with pytest.raises(NotFound):
            await RunRepo(session).upsert_steps("0" * 32, [done], 10_000)


async def make_run(db, account_id: str, save_pipeline) -> str:
    await save_pipeline(PIPELINE)
    async with db.session() as session:
        pipeline = await PipelineRepo(session).get(account_id, "echo")
        assert pipeline is not None
        run = await RunRepo(session).create(
            account_id=account_id, pipeline=pipeline, revision=1, inputs={}, trigger={"kind": "manual"}
        )
        await session.commit()
        return run.id


def step(step_id: str, status: StepStatus) -> StepResult:
    return StepResult(step_id=step_id, status=status, attempts=1, started_at=datetime.now(UTC))


async def test_a_short_run_writes_its_steps_once_at_its_end(db, account_id, save_pipeline):
    run_id = await make_run(db, account_id, save_pipeline)
    observer = StorageObserver(db, run_id, max_output_bytes=1000, first_write_delay=30.0)
    await observer.step_started(run_id, step("a", StepStatus.RUNNING))
    await asyncio.sleep(0)  # the writer starts, and waits for its first write
    await observer.step_finished(run_id, step("a", StepStatus.SUCCEEDED))
    # drain does not wait the 30 s: the writer had written nothing and is let go
    pending = await asyncio.wait_for(observer.drain(), timeout=10)
    assert [(r.step_id, r.status) for r in pending] == [("a", StepStatus.SUCCEEDED)]
    assert observer.batches == 0


async def test_a_writer_not_started_yet_is_let_go_at_drain(db, account_id, save_pipeline):
    run_id = await make_run(db, account_id, save_pipeline)
    observer = StorageObserver(db, run_id, max_output_bytes=1000, first_write_delay=30.0)
    await observer.step_started(run_id, step("a", StepStatus.RUNNING))  # no await gave the writer a turn
    pending = await asyncio.wait_for(observer.drain(), timeout=10)
    assert [r.step_id for r in pending] == ["a"]
    assert observer.batches == 0


async def test_a_long_run_shows_its_running_step_after_the_first_write_delay(db, account_id, save_pipeline):
    run_id = await make_run(db, account_id, save_pipeline)
    observer = StorageObserver(db, run_id, max_output_bytes=1000, first_write_delay=0.05)
    await observer.step_started(run_id, step("slow", StepStatus.RUNNING))
    for _ in range(400):
        async with db.session() as session:
            steps = {s.step_id: s.status for s in await RunRepo(session).steps(run_id)}
        if steps:
            break
        await asyncio.sleep(0.01)
    assert steps == {"slow": "running"}
    assert observer.batches == 1
    await observer.step_finished(run_id, step("slow", StepStatus.SUCCEEDED))  # later events: no delay
    for _ in range(400):
        if observer.batches == 2:
            break
        await asyncio.sleep(0.01)
    assert observer.batches == 2
    assert await observer.drain() == []
