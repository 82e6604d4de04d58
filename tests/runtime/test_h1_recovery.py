"""Runs left behind by a dead process: resumed with their finished steps reused and the interrupted
step's remaining attempts, or failed with a clear error; heartbeats keep live runs out of it; a
stopping server leaves its runs by the same rule; rows written by hand, then the app started."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from app.runtime.recovery import judge, resume_state
from app.runtime.service import RunService
from app.storage.db import Database
from app.storage.models import Run, StepRun

from .h1_support import (
    HeldCaller,
    leave_running,
    load_run,
    pipeline_source,
    running,
    running_service,
    status_of,
    succeeded,
    two_steps,
)


async def test_a_left_running_run_resumes_reusing_finished_steps(
    db, account_id, save_pipeline, make_settings
):
    await save_pipeline(two_steps(retry=3))
    caller = HeldCaller(hold=False, answers={"second": {"n": 40}})
    async with running_service(db, make_settings(), caller) as service:
        run = await service.create_run(account_id=account_id, pipeline_name="two", inputs={})
        # the dead process had finished `first` and was in `second` (its 1st attempt)
        await leave_running(db, run.id, [succeeded("first", {"n": 2}), running("second", attempts=1)])
        before, _ = await load_run(db, run.id)
        report = await service.recover()
        assert report.resumed == [run.id]
        assert report.failed == []
        assert report.requeued == [run.id]
        assert await service.wait(run.id, 30)
    stored, steps = await load_run(db, run.id)
    assert stored.status == "succeeded"
    assert stored.outputs == {"total": 42}
    assert stored.started_at == before.started_at  # the first start is kept
    assert [call.step_id for call in caller.calls] == ["second"]  # `first` is not called again
    assert caller.calls[0].attempt == 2  # the interrupted step goes on with its remaining attempts
    assert caller.calls[0].params["url"] == "http://upstream.test/second/2"  # with first's output
    assert steps["first"].logs[-1] == "reused from an earlier attempt"
    assert steps["second"].attempts == 2
    assert steps["second"].status == "succeeded"


async def test_an_interrupted_step_without_attempts_left_fails_the_run(
    db, account_id, save_pipeline, make_settings
):
    await save_pipeline(two_steps(retry=None))
    caller = HeldCaller(hold=False)
    async with running_service(db, make_settings(), caller) as service:
        run = await service.create_run(account_id=account_id, pipeline_name="two", inputs={})
        await leave_running(db, run.id, [succeeded("first", {"n": 2}), running("second")])
        report = await service.recover()
    assert report.failed == [run.id]
    assert report.resumed == []
    stored, steps = await load_run(db, run.id)
    assert stored.status == "failed"
    assert stored.finished_at is not None
    assert stored.error["code"] == "interrupted"
    assert stored.error["message"] == (
        "interrupted by a server restart: step `second` was running and it has no retry policy, "
        "so it is not run again"
    )
    assert stored.error["details"] == {"steps": [{"step_id": "second", "attempts": 1, "allowed": 1}]}
    assert steps["second"].status == "failed"
    assert steps["second"].error["code"] == "interrupted"
    assert steps["first"].status == "succeeded"
    assert caller.calls == []


async def test_a_step_that_used_its_attempts_is_not_run_again(db, account_id, save_pipeline, make_settings):
    await save_pipeline(two_steps(retry=2))
    async with running_service(db, make_settings(), HeldCaller(hold=False)) as service:
        run = await service.create_run(account_id=account_id, pipeline_name="two", inputs={})
        await leave_running(db, run.id, [succeeded("first", {"n": 2}), running("second", attempts=2)])
        report = await service.recover()
    assert report.failed == [run.id]
    stored, _ = await load_run(db, run.id)
    assert stored.error["message"] == (
        "interrupted by a server restart: step `second` was running and it had used all 2 attempts "
        "of its retry policy, so it is not run again"
    )


async def test_a_live_heartbeat_keeps_a_run_out_of_recovery_until_it_goes_stale(
    db, account_id, save_pipeline, make_settings
):
    await save_pipeline(pipeline_source("beating", retry=2))
    settings = make_settings(run_heartbeat_seconds=5)
    caller = HeldCaller(hold=False)
    async with running_service(db, settings, caller) as service:
        run = await service.create_run(account_id=account_id, pipeline_name="beating", inputs={})
        beat = datetime.now(UTC)
        await leave_running(db, run.id, [running("work", attempts=1)], heartbeat_at=beat)
        report = await service.recover()  # another process may still be executing it
        assert (report.resumed, report.failed, report.requeued) == ([], [], [])
        assert await status_of(db, run.id) == "running"
        assert (await service.tend(beat + timedelta(seconds=14))).resumed == []  # < 3 beats
        resumed = await service.tend(beat + timedelta(seconds=16))  # 3 heartbeats missed
        assert resumed.resumed == [run.id]
        assert await service.wait(run.id, 30)
    assert await status_of(db, run.id) == "succeeded"
    assert [call.attempt for call in caller.calls] == [2]


async def test_tend_beats_for_runs_executing_here_and_never_recovers_them(
    db, account_id, save_pipeline, make_settings
):
    await save_pipeline(pipeline_source("alive"))
    caller = HeldCaller()
    async with running_service(db, make_settings(run_heartbeat_seconds=1), caller) as service:
        run = await service.submit(account_id=account_id, pipeline_name="alive", inputs={})
        await caller.wait_started(run.id)
        later = datetime.now(UTC) + timedelta(hours=1)
        report = await service.tend(later)
        assert report.resumed == report.failed == []
        stored, _ = await load_run(db, run.id)
        assert stored.status == "running"
        assert stored.heartbeat_at == later
        # a second process sees a fresh heartbeat and leaves the run alone
        other = RunService(db, make_settings(run_heartbeat_seconds=1), HeldCaller())
        assert (await other.tend(later + timedelta(seconds=2))).resumed == []
        caller.release(run.id)
        assert await service.wait(run.id, 30)
    assert caller.order == [run.id]


async def test_a_stopping_server_leaves_its_runs_to_be_resumed_or_failed(
    db, account_id, save_pipeline, make_settings
):
    await save_pipeline(pipeline_source("patient", retry=3))
    await save_pipeline(pipeline_source("fragile"))
    caller = HeldCaller()
    async with running_service(db, make_settings(), caller) as service:
        patient = await service.submit(account_id=account_id, pipeline_name="patient", inputs={})
        fragile = await service.submit(account_id=account_id, pipeline_name="fragile", inputs={})
        await caller.wait_started(patient.id)
        await caller.wait_started(fragile.id)
    # the queue stopped (graceful shutdown): its workers were cancelled mid-step
    stored, steps = await load_run(db, patient.id)
    assert stored.status == "queued"  # resumed at the next start
    assert steps["work"].status == "running"
    stored, steps = await load_run(db, fragile.id)
    assert stored.status == "failed"
    assert stored.error["code"] == "interrupted"
    assert steps["work"].status == "failed"

    again = HeldCaller(hold=False)
    async with running_service(db, make_settings(), again) as service:
        report = await service.recover()
        assert report.requeued == [patient.id]
        assert await service.wait(patient.id, 30)
    assert await status_of(db, patient.id) == "succeeded"
    assert [call.attempt for call in again.calls] == [2]


async def test_the_app_resumes_rows_left_by_a_dead_process_at_start(make_settings, app_runner, local_server):
    """Rows written as a killed server leaves them; starting the app resumes the run against a real
    upstream, which is not called again for the step that had succeeded."""
    hits: dict[str, int] = {"first": 0, "second": 0}

    async def first(request: web.Request) -> web.Response:
        hits["first"] += 1
        return web.json_response({"n": 1})

    async def second(request: web.Request) -> web.Response:
        hits["second"] += 1
        return web.json_response({"n": 10})

    base = await local_server({"GET /first": first, "GET /second/{n}": second})
    source = two_steps(retry=2).replace("http://upstream.test", base)
    settings = make_settings()
    async with app_runner(settings) as (_, state):
        from app.runtime.pipelines import check_source, create_pipeline

        async with state.db.session() as session:
            await create_pipeline(
                session, state.bootstrap.account_id, source, check_source(source, None, max_bytes=10_000)
            )
            await session.commit()
        run = await state.runs.create_run(
            account_id=state.bootstrap.account_id, pipeline_name="two", inputs={}
        )
        queued = await state.runs.create_run(
            account_id=state.bootstrap.account_id, pipeline_name="two", inputs={}
        )
    # as if the server died: one run in `second`, one recorded but never handed to a worker
    db = Database(settings.database_url)
    try:
        await leave_running(db, run.id, [succeeded("first", {"n": 5})])
    finally:
        await db.dispose()
    async with app_runner(settings) as (_, state):
        assert await state.runs.wait(run.id, 30)
        assert await state.runs.wait(queued.id, 30)
        resumed, steps = await load_run(state.db, run.id)
        assert resumed.status == "succeeded"
        assert resumed.outputs == {"total": 15}  # first's recorded output, second's fresh one
        assert steps["first"].logs[-1] == "reused from an earlier attempt"
        assert (await load_run(state.db, queued.id))[0].outputs == {"total": 11}
    assert hits == {"first": 1, "second": 2}  # `first` ran once in all: for the queued run


def _row(step_id: str, status: str, attempts: int = 1, truncated: bool = False, output=None) -> StepRun:
    return StepRun(
        step_id=step_id,
        status=status,
        attempts=attempts,
        output=output,
        output_truncated=truncated,
        logs=[],
    )


def test_resume_state_reuses_only_whole_outputs_and_own_rows_win():
    earlier = [_row("a", "succeeded", output=1), _row("b", "failed"), _row("c", "succeeded", truncated=True)]
    own = [_row("a", "succeeded", output=2), _row("d", "running", attempts=0), _row("e", "skipped")]
    state = resume_state(own, earlier)
    assert set(state.prior) == {"a", "e"}
    assert state.prior["a"].output == 2
    assert state.attempts_used == {"d": 1}


def test_judge_without_spec_fails_the_run():
    verdict = judge(None, [_row("x", "running")])
    assert not verdict.resume
    assert verdict.interrupted == ("x",)
    assert verdict.error is not None
    assert verdict.error["code"] == "interrupted"


async def test_recovery_of_a_run_whose_spec_is_broken_fails_it(db, account_id, save_pipeline, make_settings):
    from sqlalchemy import update

    from app.storage.models import PipelineRevision

    await save_pipeline(pipeline_source("broken", retry=2))
    async with running_service(db, make_settings(), HeldCaller(hold=False)) as service:
        run = await service.create_run(account_id=account_id, pipeline_name="broken", inputs={})
    await leave_running(db, run.id, [running("work", attempts=1)])
    async with db.session() as session:
        await session.execute(update(PipelineRevision).values(spec={"not": "a spec"}))
        await session.commit()
    async with running_service(db, make_settings(), HeldCaller(hold=False)) as restarted:
        report = await restarted.recover()
    assert report.failed == [run.id]
    stored, _ = await load_run(db, run.id)
    assert stored.error["message"] == "interrupted by a server restart; its revision cannot be loaded"


async def test_no_run_stays_running_after_recovery(db, account_id, save_pipeline, make_settings):
    await save_pipeline(two_steps(retry=2))
    caller = HeldCaller(hold=False)
    async with running_service(db, make_settings(), caller) as service:
        runs: list[Run] = []
        for attempts in (0, 1, 2, 3):
            run = await service.create_run(account_id=account_id, pipeline_name="two", inputs={})
            await leave_running(db, run.id, [succeeded("first", {"n": 1}), running("second", attempts)])
            runs.append(run)
        report = await service.recover()
        assert sorted(report.resumed + report.failed) == sorted(run.id for run in runs)
        for run_id in report.resumed:
            assert await service.wait(run_id, 30)
    statuses = [await status_of(db, run.id) for run in runs]
    assert statuses == ["succeeded", "succeeded", "failed", "failed"]
