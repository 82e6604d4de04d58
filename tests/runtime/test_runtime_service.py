"""RunService: record before start, execute with persisted steps, never leave a run running, recover."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.engine.types import OperationCall
from app.errors import Conflict, NotFound, Unprocessable
from app.runtime.service import RunService
from app.storage.repositories import RunRepo

PIPELINE = """\
version: 1
name: numbers
inputs:
  limit: {type: integer, default: 2}
steps:
  - id: all
    uses: core.set
    with: {value: [5, 3, 9, 1]}
  - id: top
    uses: core.sort
    with: {items: "${{ steps.all.output }}", by: item, order: desc, limit: "${{ inputs.limit }}"}
outputs:
  top: ${{ steps.top.output }}
"""

BIG = """\
version: 1
name: big
steps:
  - id: text
    uses: core.template
    with: {text: "${{ inputs.word }}"}
inputs:
  word: {type: string}
outputs:
  size: ${{ size(steps.text.output) }}
"""


class NoCalls:
    async def __call__(self, call: OperationCall) -> Any:
        raise AssertionError(f"unexpected connector call {call.uses}")


class RecordingQueue:
    def __init__(self) -> None:
        self.enqueued: list[str] = []

    async def enqueue(self, run_id: str) -> None:
        self.enqueued.append(run_id)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


@pytest.fixture
def service(db, make_settings):
    svc = RunService(db, make_settings(), NoCalls())
    svc.attach_queue(RecordingQueue())
    return svc


async def stored(db, run_id: str):
    async with db.session() as session:
        repo = RunRepo(session)
        run = await repo.get_any(run_id)
        return run, await repo.steps(run_id)


async def test_a_run_is_recorded_queued_before_it_starts(service, db, account_id, save_pipeline):
    await save_pipeline(PIPELINE)
    run = await service.submit(account_id=account_id, pipeline_name="numbers", inputs={"limit": "3"})
    assert service.queue.enqueued == [run.id]
    fresh, steps = await stored(db, run.id)
    assert fresh.status == "queued"
    assert fresh.inputs == {"limit": 3}
    assert fresh.started_at is None
    assert steps == []


async def test_execute_runs_it_and_persists_every_step(service, db, account_id, save_pipeline):
    await save_pipeline(PIPELINE)
    run = await service.create_run(account_id=account_id, pipeline_name="numbers", inputs={})
    await service.execute(run.id)
    fresh, steps = await stored(db, run.id)
    assert fresh.status == "succeeded"
    assert fresh.outputs == {"top": [9, 5]}
    assert fresh.started_at is not None
    assert fresh.finished_at >= fresh.started_at
    assert {s.step_id: s.output for s in steps} == {"all": [5, 3, 9, 1], "top": [9, 5]}
    assert all(s.status == "succeeded" and s.attempts == 1 for s in steps)
    assert await service.wait(run.id, 0) is True
    # executing again does nothing: the run is no longer queued
    await service.execute(run.id)
    assert (await stored(db, run.id))[0].finished_at == fresh.finished_at


async def test_plans_are_compiled_once_per_revision(service, account_id, save_pipeline):
    await save_pipeline(PIPELINE)
    for _ in range(3):
        run = await service.create_run(account_id=account_id, pipeline_name="numbers", inputs={})
        await service.execute(run.id)
    assert len(service.plans) == 1


async def test_unknown_pipeline_revision_and_bad_inputs(service, account_id, save_pipeline):
    with pytest.raises(NotFound):
        await service.create_run(account_id=account_id, pipeline_name="nope", inputs={})
    await save_pipeline(PIPELINE)
    with pytest.raises(NotFound, match="revision 4"):
        await service.create_run(account_id=account_id, pipeline_name="numbers", inputs={}, revision=4)
    with pytest.raises(Unprocessable) as caught:
        await service.create_run(
            account_id=account_id, pipeline_name="numbers", inputs={"limit": "x", "y": 1}
        )
    assert {d["input"] for d in caught.value.details} == {"limit", "y"}
    with pytest.raises(NotFound):
        await service.create_run(account_id="someone-else", pipeline_name="numbers", inputs={})


async def test_an_unexpected_error_fails_the_run_with_its_message(
    service, db, account_id, save_pipeline, monkeypatch
):
    await save_pipeline(PIPELINE)
    run = await service.create_run(account_id=account_id, pipeline_name="numbers", inputs={})

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the plan exploded")

    monkeypatch.setattr(service.plans, "get", broken)
    await service.execute(run.id)
    fresh, _ = await stored(db, run.id)
    assert fresh.status == "failed"
    assert fresh.error["code"] == "internal_error"
    assert "RuntimeError: the plan exploded" in fresh.error["message"]
    assert fresh.finished_at is not None


async def test_a_cancelled_task_records_the_run_as_interrupted(db, account_id, save_pipeline, make_settings):
    entered = asyncio.Event()

    class Hanging:
        async def __call__(self, call: OperationCall) -> Any:
            entered.set()
            await asyncio.Event().wait()

    await save_pipeline(
        "version: 1\nname: hang\nsteps:\n  - id: wait\n    uses: http.get_json\n    with: {url: 'http://x.test'}\n"
    )
    service = RunService(db, make_settings(), Hanging())
    run = await service.create_run(account_id=account_id, pipeline_name="hang", inputs={})
    task = asyncio.create_task(service.execute(run.id))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    fresh, _ = await stored(db, run.id)
    assert fresh.status == "failed"
    assert fresh.error["code"] == "interrupted"


async def test_cancel_states(service, db, account_id, save_pipeline):
    await save_pipeline(PIPELINE)
    queued = await service.create_run(account_id=account_id, pipeline_name="numbers", inputs={})
    await service.cancel(account_id, queued.id)
    fresh, _ = await stored(db, queued.id)
    assert fresh.status == "cancelled"
    assert fresh.error["code"] == "cancelled"
    await service.execute(queued.id)  # a cancelled run is never started
    assert (await stored(db, queued.id))[0].started_at is None
    with pytest.raises(Conflict, match="already cancelled"):
        await service.cancel(account_id, queued.id)
    with pytest.raises(NotFound):
        await service.cancel("another-account", queued.id)


async def test_wait_times_out_on_a_run_nobody_executes(service, account_id, save_pipeline):
    await save_pipeline(PIPELINE)
    run = await service.create_run(account_id=account_id, pipeline_name="numbers", inputs={})
    assert await service.wait(run.id, 0.05) is False
    assert await service.wait("no-such-run", 1) is False


async def test_recovery_resumes_interrupted_runs_and_requeues_queued_ones(
    service, db, account_id, save_pipeline
):
    from datetime import UTC, datetime

    await save_pipeline(PIPELINE)
    interrupted = await service.create_run(account_id=account_id, pipeline_name="numbers", inputs={})
    waiting = await service.create_run(account_id=account_id, pipeline_name="numbers", inputs={})
    done = await service.create_run(account_id=account_id, pipeline_name="numbers", inputs={})
    await service.execute(done.id)
    async with db.session() as session:
        await RunRepo(session).mark_running(interrupted.id, datetime.now(UTC))
        await session.commit()

    report = await service.recover()
    # no step of `interrupted` was recorded running, so nothing was cut short: it is resumed
    # (tests/runtime/test_h1_recovery.py covers the failing side of the rule)
    assert (report.resumed, report.failed) == ([interrupted.id], [])
    assert service.queue.enqueued == [interrupted.id, waiting.id]
    resumed, _ = await stored(db, interrupted.id)
    assert resumed.status == "queued"
    assert resumed.started_at is not None  # its first start is kept
    assert (await stored(db, waiting.id))[0].status == "queued"
    assert (await stored(db, done.id))[0].status == "succeeded"


async def test_large_step_outputs_are_stored_truncated(db, account_id, save_pipeline, make_settings):
    service = RunService(db, make_settings(step_output_max_bytes=100), NoCalls())
    await save_pipeline(BIG)
    run = await service.create_run(account_id=account_id, pipeline_name="big", inputs={"word": "z" * 5000})
    await service.execute(run.id)
    fresh, (step,) = await stored(db, run.id)
    assert fresh.status == "succeeded"
    assert fresh.outputs == {"size": 5000}
    assert step.output_truncated is True
    assert step.output["truncated"] is True
    assert step.output["size"] > 5000
