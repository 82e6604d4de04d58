"""RunRepo: creation, scoping, keyset pagination, state changes, step upserts and output capping."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.exc import InvalidRequestError

from app.engine.types import RunStatus, StepError, StepResult, StepStatus
from app.errors import BadRequest, NotFound
from app.storage import PipelineRepo, Run, RunRepo
from app.storage.repositories.runs import RunPage, cap_logs, cap_output

from .conftest import Clock, make_pipeline, must

T0 = datetime(2025, 2, 1, 9, 0, tzinfo=UTC)


async def _run(session, account, pipeline, **kwargs):
    values: dict[str, Any] = {"revision": 1, "inputs": {"topic": "python"}, "trigger": {"kind": "manual"}}
    values.update(kwargs)
    run = await RunRepo(session).create(account_id=account.id, pipeline=pipeline, **values)
    await session.commit()
    return run


async def test_create_records_a_queued_run(session, account):
    pipeline = await make_pipeline(session, account)
    revision = await PipelineRepo(session).latest_revision(pipeline)
    run = await RunRepo(session).create(
        account_id=account.id,
        pipeline=pipeline,
        revision=revision,
        inputs={"topic": "python"},
        trigger={"kind": "schedule", "cron": "0 8 * * *"},
    )
    await session.commit()
    session.expunge_all()
    loaded = must(await RunRepo(session).get(account.id, run.id))
    assert loaded.status == "queued"
    assert loaded.pipeline_id == pipeline.id
    assert loaded.pipeline_name == "digest"
    assert loaded.revision == 1
    assert loaded.trigger_kind == "schedule"
    assert loaded.trigger == {"kind": "schedule", "cron": "0 8 * * *"}
    assert loaded.inputs == {"topic": "python"}
    assert loaded.outputs is None
    assert loaded.error is None
    assert loaded.attempt == 1
    assert loaded.started_at is None
    assert loaded.finished_at is None
    assert loaded.duration_ms is None
    assert loaded.created_at.tzinfo is not None


async def test_create_checks_its_arguments(session, account, other_account):
    pipeline = await make_pipeline(session, account)
    foreign = await make_pipeline(session, other_account, "foreign")
    foreign_revision = await PipelineRepo(session).latest_revision(foreign)
    repo = RunRepo(session)
    common: dict[str, Any] = {"inputs": {}, "trigger": {}}
    with pytest.raises(NotFound):
        await repo.create(account_id=account.id, pipeline=foreign, revision=1, **common)
    with pytest.raises(BadRequest):
        await repo.create(account_id=account.id, pipeline=pipeline, revision=foreign_revision, **common)
    with pytest.raises(NotFound, match="no revision 2"):
        await repo.create(account_id=account.id, pipeline=pipeline, revision=2, **common)
    with pytest.raises(BadRequest, match="unknown run status"):
        await repo.create(account_id=account.id, pipeline=pipeline, revision=1, status="paused", **common)
    run = await repo.create(account_id=account.id, pipeline=pipeline, revision=1, **common)
    assert run.trigger_kind == "manual"


async def test_get_is_scoped_by_account(session, account, other_account):
    pipeline = await make_pipeline(session, account)
    run = await _run(session, account, pipeline)
    repo = RunRepo(session)
    assert must(await repo.get(account.id, run.id)).id == run.id
    assert await repo.get(other_account.id, run.id) is None
    assert await repo.get(account.id, "0" * 32) is None
    assert must(await repo.get_any(run.id)).account_id == account.id
    assert await repo.get_any("0" * 32) is None
    page = await repo.list(other_account.id)
    assert (page.runs, page.total) == ([], 0)


async def _many_runs(session, account, pipelines, statuses, count):
    """``count`` runs spread over pipelines and statuses, with known, increasing created_at."""
    clock = Clock(T0)
    made = []
    repo = RunRepo(session)
    for index in range(count):
        pipeline = pipelines[index % len(pipelines)]
        run = await repo.create(
            account_id=account.id,
            pipeline=pipeline,
            revision=1,
            inputs={"i": index},
            trigger={"kind": "manual"},
            status=statuses[index % len(statuses)],
        )
        run.created_at = clock()
        made.append(run)
    await session.commit()
    return made


def _newest_first(runs):
    return [run.id for run in sorted(runs, key=lambda run: (run.created_at, run.id), reverse=True)]


async def _all_pages(repo, account_id, limit, **filters):
    ids: list[str] = []
    totals: set[int] = set()
    pages = 0
    cursor = None
    while True:
        page = await repo.list(account_id, limit=limit, cursor=cursor, **filters)
        cursor = page.next_cursor
        ids.extend(run.id for run in page.runs)
        totals.add(page.total)
        pages += 1
        if cursor is None:
            return ids, totals, pages


async def test_list_pages_newest_first_with_total(session, account):
    pipeline = await make_pipeline(session, account)
    runs = await _many_runs(session, account, [pipeline], ["queued"], 23)
    ids, totals, pages = await _all_pages(RunRepo(session), account.id, 5)
    assert ids == _newest_first(runs)
    assert totals == {23}
    assert pages == 5
    everything = await RunRepo(session).list(account.id, limit=23)  # one full page
    assert (len(everything.runs), everything.total, everything.next_cursor) == (23, 23, None)
    fewer = await RunRepo(session).list(account.id, status="queued", limit=100)
    assert (len(fewer.runs), fewer.total) == (23, 23)


async def test_listed_runs_are_summaries_without_their_large_json(session, account):
    pipeline = await make_pipeline(session, account)
    await _many_runs(session, account, [pipeline], ["queued"], 2)
    session.expunge_all()  # read back from the database, not from the session's identity map
    page = await RunRepo(session).list(account.id)
    run = page.runs[0]
    assert (run.status, run.pipeline_name, run.error) == ("queued", pipeline.name, None)
    for name in ("inputs", "outputs", "trigger"):
        with pytest.raises(InvalidRequestError):
            getattr(run, name)
    whole = await RunRepo(session).get(account.id, run.id)
    assert whole is not None
    assert isinstance(whole.inputs, dict)


async def test_list_filters_by_pipeline_and_status(session, account, other_account):
    first = await make_pipeline(session, account, "first")
    second = await make_pipeline(session, account, "second")
    runs = await _many_runs(session, account, [first, second], ["succeeded", "failed", "queued"], 30)
    foreign = await make_pipeline(session, other_account, "first")
    await _run(session, other_account, foreign)
    repo = RunRepo(session)

    ids, totals, _ = await _all_pages(repo, account.id, 4, pipeline_name="first")
    assert ids == _newest_first([run for run in runs if run.pipeline_id == first.id])
    assert totals == {15}

    ids, totals, _ = await _all_pages(repo, account.id, 4, status="failed")
    assert ids == _newest_first([run for run in runs if run.status == "failed"])
    assert totals == {10}

    ids, totals, _ = await _all_pages(repo, account.id, 3, pipeline_name="second", status=RunStatus.SUCCEEDED)
    expected = [run for run in runs if run.pipeline_id == second.id and run.status == "succeeded"]
    assert ids == _newest_first(expected)
    assert totals == {len(expected)}

    assert await repo.list(account.id, pipeline_name="nope") == RunPage([], 0, None)
    with pytest.raises(BadRequest, match="unknown run status"):
        await repo.list(account.id, status="weird")


async def test_cursor_is_stable_while_runs_are_added(session, account):
    pipeline = await make_pipeline(session, account)
    runs = await _many_runs(session, account, [pipeline], ["queued"], 10)
    repo = RunRepo(session)
    first = await repo.list(account.id, limit=4)
    assert first.total == 10
    # New runs arrive (newer than everything) between two page requests.
    for _ in range(3):
        await _run(session, account, pipeline)
    second = await repo.list(account.id, limit=4, cursor=first.next_cursor)
    third = await repo.list(account.id, limit=4, cursor=second.next_cursor)
    expected = _newest_first(runs)
    assert [run.id for run in first.runs + second.runs + third.runs] == expected
    assert second.total == 13
    assert third.next_cursor is None


async def test_runs_created_in_the_same_instant_are_paged_by_id(session, account):
    pipeline = await make_pipeline(session, account)
    runs = await _many_runs(session, account, [pipeline], ["queued"], 7)
    await session.execute(update(Run).values(created_at=T0))
    await session.commit()
    for run in runs:
        run.created_at = T0
    ids, _, pages = await _all_pages(RunRepo(session), account.id, 2)
    assert ids == sorted((run.id for run in runs), reverse=True)
    assert pages == 4


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        "eyJ0IjoxfQ",
        "WyJuIiwiYSJd",
        "WyJ0Iiwibm90LWEtZGF0ZSIsImlkIl0",
        "WyJ0IiwiMjAyNS0wMS0wMSIsImlkIl0",
    ],
)
async def test_list_rejects_bad_cursors(session, account, cursor):
    await make_pipeline(session, account)
    with pytest.raises(BadRequest, match="invalid cursor"):
        await RunRepo(session).list(account.id, cursor=cursor)
    with pytest.raises(BadRequest, match="invalid cursor"):
        await RunRepo(session).list(account.id, cursor=cursor, pipeline_name="absent")


@pytest.mark.parametrize("limit", [0, 1001])
async def test_list_rejects_bad_limits(session, account, limit):
    with pytest.raises(BadRequest, match="limit"):
        await RunRepo(session).list(account.id, limit=limit)


async def test_mark_running_then_finish(session, account):
    pipeline = await make_pipeline(session, account)
    run = await _run(session, account, pipeline)
    repo = RunRepo(session)
    assert await repo.mark_running(run.id, T0) is True
    await session.commit()
    assert run.status == "running"
    assert run.started_at == T0
    finished = T0 + timedelta(seconds=2, milliseconds=500)
    error = StepError(code="upstream_error", message="boom", details={"status": 502})
    assert await repo.finish(run.id, RunStatus.FAILED, None, error, finished) is True
    await session.commit()
    session.expunge_all()
    loaded = must(await repo.get(account.id, run.id))
    assert loaded.status == "failed"
    assert loaded.error == {"code": "upstream_error", "message": "boom", "details": {"status": 502}}
    assert loaded.outputs is None
    assert loaded.finished_at == finished
    assert loaded.duration_ms == 2500
    # A finished run cannot start or finish again.
    assert await repo.mark_running(run.id, T0) is False
    assert await repo.finish(run.id, "succeeded", {"x": 1}, None, finished) is False
    assert await repo.mark_running("0" * 32, T0) is False


async def test_finish_with_outputs_and_rejects_non_final_status(session, account):
    pipeline = await make_pipeline(session, account)
    run = await _run(session, account, pipeline)
    repo = RunRepo(session)
    with pytest.raises(BadRequest, match="not a final run status"):
        await repo.finish(run.id, "running", None, None, T0)
    assert await repo.finish(run.id, "succeeded", {"items": [1, 2]}, None, T0) is True
    await session.commit()
    assert must(await repo.get_any(run.id)).outputs == {"items": [1, 2]}


async def test_cancelled_queued_run_is_not_started(session, account):
    pipeline = await make_pipeline(session, account)
    run = await _run(session, account, pipeline)
    repo = RunRepo(session)
    assert await repo.finish(run.id, RunStatus.CANCELLED, None, None, T0) is True
    assert await repo.mark_running(run.id, T0) is False
    await session.commit()
    assert must(await repo.get_any(run.id)).status == "cancelled"


async def test_unfinished_lists_queued_and_running_runs(session, account, other_account):
    pipeline = await make_pipeline(session, account)
    foreign = await make_pipeline(session, other_account)
    repo = RunRepo(session)
    queued = await _run(session, account, pipeline)
    running = await _run(session, other_account, foreign)
    done = await _run(session, account, pipeline)
    await repo.mark_running(running.id, T0)
    await repo.finish(done.id, "succeeded", {}, None, T0)
    await session.commit()
    assert [run.id for run in await repo.unfinished()] == [queued.id, running.id]


async def test_upsert_step_inserts_then_updates(session, account):
    pipeline = await make_pipeline(session, account)
    run = await _run(session, account, pipeline)
    repo = RunRepo(session)
    started = StepResult(step_id="fetch", status=StepStatus.RUNNING, attempts=1, started_at=T0)
    row = await repo.upsert_step(run.id, started, 1000)
    await session.commit()
    assert row.status == "running"
    assert row.finished_at is None
    assert row.duration_ms is None
    assert row.logs == []

    done = StepResult(
        step_id="fetch",
        status=StepStatus.SUCCEEDED,
        attempts=2,
        started_at=T0,
        finished_at=T0 + timedelta(milliseconds=1500),
        output={"items": [1, 2, 3]},
        logs=["GET http://127.0.0.1/ -> 200"],
    )
    updated = await repo.upsert_step(run.id, done, 1000)
    await session.commit()
    assert updated.id == row.id
    session.expunge_all()
    steps = await repo.steps(run.id)
    assert len(steps) == 1
    step = steps[0]
    assert step.status == "succeeded"
    assert step.attempts == 2
    assert step.duration_ms == 1500
    assert step.output == {"items": [1, 2, 3]}
    assert step.output_truncated is False
    assert step.logs == ["GET http://127.0.0.1/ -> 200"]
    assert step.error is None
    result = step.to_result()
    assert result.status is StepStatus.SUCCEEDED
    assert result.output == {"items": [1, 2, 3]}
    assert result.duration_ms == 1500


async def test_upsert_step_records_errors(session, account):
    pipeline = await make_pipeline(session, account)
    run = await _run(session, account, pipeline)
    failed = StepResult(
        step_id="post",
        status=StepStatus.FAILED,
        attempts=3,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=1),
        error=StepError(code="timeout", message="took too long", details={"after": 10}),
    )
    step = await RunRepo(session).upsert_step(run.id, failed, 1000)
    await session.commit()
    assert step.error == {"code": "timeout", "message": "took too long", "details": {"after": 10}}
    back = step.to_result()
    assert back.error == StepError(code="timeout", message="took too long", details={"after": 10})


async def test_steps_come_in_start_order(session, account):
    pipeline = await make_pipeline(session, account)
    run = await _run(session, account, pipeline)
    repo = RunRepo(session)
    await repo.upsert_step(run.id, StepResult(step_id="late", status=StepStatus.PENDING), 100)
    await repo.upsert_step(run.id, StepResult(step_id="second", started_at=T0 + timedelta(seconds=1)), 100)
    await repo.upsert_step(run.id, StepResult(step_id="zfirst", started_at=T0), 100)
    await session.commit()
    assert [step.step_id for step in await repo.steps(run.id)] == ["zfirst", "second", "late"]
    assert await repo.steps("0" * 32) == []


async def test_upsert_step_of_unknown_run(session):
    with pytest.raises(NotFound):
        await RunRepo(session).upsert_step("0" * 32, StepResult(step_id="a"), 100)


async def test_large_outputs_are_capped(session, account):
    pipeline = await make_pipeline(session, account)
    run = await _run(session, account, pipeline)
    big = [{"title": f"story {index}", "points": index} for index in range(500)]
    size = len(json.dumps(big, separators=(",", ":")).encode())
    step = await RunRepo(session).upsert_step(
        run.id, StepResult(step_id="big", status=StepStatus.SUCCEEDED, output=big), 2000
    )
    await session.commit()
    session.expunge_all()
    stored = (await RunRepo(session).steps(run.id))[0]
    assert step.output_truncated is True
    assert stored.output_truncated is True
    assert stored.output["truncated"] is True
    assert stored.output["size"] == size
    assert stored.output["preview"].startswith('[{"title":"story 0","points":0}')
    assert len(stored.output["preview"]) == 1024


def test_cap_output_edges():
    assert cap_output(None, 0) == (None, False)
    assert cap_output({"a": 1}, 7) == ({"a": 1}, False)  # {"a":1} is exactly 7 bytes
    capped, truncated = cap_output({"a": 1}, 6)
    assert truncated is True
    assert capped == {"truncated": True, "size": 7, "preview": '{"a":1'}
    capped, _ = cap_output("é" * 100, 10)  # the preview never splits a character
    assert capped["preview"] == '"' + "é" * 9
    assert capped["size"] == 202


def test_cap_logs_keeps_the_first_lines():
    assert cap_logs(["a", "b"], 10) == ["a", "b"]
    assert cap_logs(["12345", "67890", "x"], 10) == [
        "12345",
        "67890",
        "... 1 more log lines dropped (over 10 bytes)",
    ]


async def test_logs_are_capped_when_stored(session, account):
    pipeline = await make_pipeline(session, account)
    run = await _run(session, account, pipeline)
    lines = [f"line {index:04d}" for index in range(100)]
    step = await RunRepo(session).upsert_step(run.id, StepResult(step_id="chatty", logs=lines), 90)
    assert step.logs[:10] == lines[:10]  # 10 lines of 9 bytes fit in 90 bytes
    assert step.logs[-1] == "... 90 more log lines dropped (over 90 bytes)"


async def test_bare_number_outputs_round_trip_exactly(session, account):
    pipeline = await make_pipeline(session, account)
    run = await _run(session, account, pipeline)
    repo = RunRepo(session)
    values = {"float": 1.0, "big": 123456789012345678901234567890, "negative_zero": -0.0, "text": "42"}
    for step_id, value in values.items():
        await repo.upsert_step(run.id, StepResult(step_id=step_id, output=value), 1000)
    await session.commit()
    session.expunge_all()
    stored = {step.step_id: step.output for step in await repo.steps(run.id)}
    assert stored == values
    assert isinstance(stored["float"], float)
    assert isinstance(stored["text"], str)


async def test_negative_cap_is_refused(session, account):
    pipeline = await make_pipeline(session, account)
    run = await _run(session, account, pipeline)
    with pytest.raises(BadRequest):
        await RunRepo(session).upsert_step(run.id, StepResult(step_id="a"), -1)


async def test_cursor_with_another_offset_means_the_same_instant(session, account):
    import base64
    import json as jsonlib

    pipeline = await make_pipeline(session, account)
    runs = await _many_runs(session, account, [pipeline], ["queued"], 5)
    newest_first = sorted(runs, key=lambda run: (run.created_at, run.id), reverse=True)
    pivot = newest_first[1]
    paris = pivot.created_at.astimezone(timezone(timedelta(hours=2))).isoformat()
    raw = jsonlib.dumps(["t", paris, pivot.id]).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    page = await RunRepo(session).list(account.id, cursor=cursor)
    assert [run.id for run in page.runs] == [run.id for run in newest_first[2:]]


async def test_concurrent_writers_do_not_trip_over_each_other(db, session, account):
    """Many sessions writing at once (API + worker in one process) wait for each other, no 'locked'."""
    import asyncio

    pipeline = await make_pipeline(session, account)

    async def worker(index: int) -> str:
        async with db.session() as own:
            run = await RunRepo(own).create(
                account_id=account.id, pipeline=pipeline, revision=1, inputs={"i": index}, trigger={}
            )
            await own.commit()
            for step in range(5):
                result = StepResult(step_id=f"s{step}", status=StepStatus.SUCCEEDED, output={"i": index})
                await RunRepo(own).upsert_step(run.id, result, 1000)
                await own.commit()
            assert await RunRepo(own).finish(run.id, "succeeded", {"i": index}, None, T0)
            await own.commit()
            return run.id

    run_ids = await asyncio.gather(*(worker(index) for index in range(30)))
    page = await RunRepo(session).list(account.id, status="succeeded", limit=100)
    assert page.total == 30
    assert {run.id for run in page.runs} == set(run_ids)
    for run_id in run_ids[:3]:
        assert len(await RunRepo(session).steps(run_id)) == 5
