"""The scheduler, in time travel: a fake clock drives the real loop through days of fire times."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import delete

from app.runtime.clock import FakeClock
from app.runtime.scheduler import COUNT_CAP, Scheduler, SchedulerPass
from app.storage.db import Database
from app.storage.models import Pipeline
from app.storage.repositories.triggers import TriggerRepo

from .h2_support import fired_at, queued_runs, runs_of, save, settings, triggers_of, utc

HOURLY = """
version: 1
name: hourly
triggers:
  - schedule: {cron: "0 * * * *", timezone: UTC}
steps:
  - {id: a, uses: core.set, with: {value: 1}}
"""

NIGHTLY_PARIS = """
version: 1
name: nightly
triggers:
  - schedule: {cron: "30 2 * * *", timezone: Europe/Paris}
steps:
  - {id: a, uses: core.set, with: {value: 1}}
"""


def scheduler_for(db: Database, clock: FakeClock, **overrides) -> Scheduler:
    """A scheduler on the fake clock; alone on its database, it need not re-read it while idle."""
    config = settings(**{"trigger_idle_seconds": 86_400, **overrides})
    return Scheduler(db, queued_runs(db, config), config, clock=clock)


async def test_three_days_of_an_hourly_schedule_start_exactly_72_runs(db, account_id):
    clock = FakeClock(utc(2026, 5, 1, 0, 0, 10))
    await save(db, account_id, HOURLY, clock.now())
    scheduler = scheduler_for(db, clock)

    await scheduler.run(until=utc(2026, 5, 4, 0, 0, 10))

    fired = await fired_at(db, account_id, "hourly")
    assert len(fired) == 72
    assert fired[0] == "2026-05-01T01:00:00Z"
    assert fired[-1] == "2026-05-04T00:00:00Z"
    assert len(set(fired)) == 72
    # the loop slept until each fire time instead of polling the database every second
    assert clock.slept == [3590.0] + [3600.0] * 71 + [10.0]
    runs = await runs_of(db, account_id, "hourly")
    assert {run.trigger["kind"] for run in runs} == {"schedule"}
    assert runs[0].trigger == {
        "kind": "schedule",
        "fired_at": "2026-05-01T01:00:00Z",
        "local_time": "2026-05-01T01:00:00+00:00",
        "cron": "0 * * * *",
        "timezone": "UTC",
    }
    assert {run.status for run in runs} == {"queued"}


async def test_spring_forward_in_paris_runs_once_at_the_jump(db, account_id):
    clock = FakeClock(utc(2026, 3, 27, 12))
    await save(db, account_id, NIGHTLY_PARIS, clock.now())

    await scheduler_for(db, clock).run(until=utc(2026, 3, 31, 12))

    assert await fired_at(db, account_id, "nightly") == [
        "2026-03-28T01:30:00Z",  # 02:30 CET
        "2026-03-29T01:00:00Z",  # 02:30 does not exist: once, at 03:00 CEST
        "2026-03-30T00:30:00Z",  # 02:30 CEST
        "2026-03-31T00:30:00Z",
    ]
    runs = await runs_of(db, account_id, "nightly")
    assert runs[1].trigger["local_time"] == "2026-03-29T03:00:00+02:00"


async def test_fall_back_in_paris_runs_once_for_the_repeated_time(db, account_id):
    clock = FakeClock(utc(2026, 10, 23, 12))
    await save(db, account_id, NIGHTLY_PARIS, clock.now())

    await scheduler_for(db, clock).run(until=utc(2026, 10, 27, 12))

    assert await fired_at(db, account_id, "nightly") == [
        "2026-10-24T00:30:00Z",
        "2026-10-25T00:30:00Z",  # first 02:30 (CEST); the second 02:30 (CET, 01:30Z) starts nothing
        "2026-10-26T01:30:00Z",
        "2026-10-27T01:30:00Z",
    ]


async def test_downtime_default_policy_runs_once_for_the_latest_missed_time(db, account_id, caplog):
    clock = FakeClock(utc(2026, 5, 1, 0, 30))
    pipeline = await save(db, account_id, HOURLY, clock.now())
    scheduler = scheduler_for(db, clock)
    await scheduler.run(until=utc(2026, 5, 1, 2, 30))  # fires 01:00, 02:00
    clock.set(utc(2026, 5, 1, 9, 40))  # down from 02:30 to 09:40: 03:00 .. 09:00 missed

    with caplog.at_level(logging.WARNING, logger="mashpipe.scheduler"):
        await scheduler.tick()

    assert await fired_at(db, account_id, "hourly") == [
        "2026-05-01T01:00:00Z",
        "2026-05-01T02:00:00Z",
        "2026-05-01T09:00:00Z",  # once, for the latest missed time; not a storm of 7
    ]
    [trigger] = await triggers_of(db, pipeline.id)
    assert trigger.skipped_fires == 6
    assert trigger.last_skipped_at == utc(2026, 5, 1, 9, 40)
    assert trigger.next_fire_at == utc(2026, 5, 1, 10)
    assert "6 missed fire time(s)" in caplog.text


async def test_a_long_downtime_of_a_frequent_schedule_is_counted_up_to_a_cap(db, account_id, caplog):
    source = HOURLY.replace('"0 * * * *"', '"* * * * *"').replace("name: hourly", "name: minutely")
    clock = FakeClock(utc(2026, 5, 1, 0, 0, 30))
    pipeline = await save(db, account_id, source, clock.now())
    clock.set(utc(2026, 5, 3, 0, 0, 30))  # two days down: 2,880 fire times

    with caplog.at_level(logging.WARNING, logger="mashpipe.scheduler"):
        await scheduler_for(db, clock).tick()

    assert await fired_at(db, account_id, "minutely") == ["2026-05-03T00:00:00Z"]  # on time, once
    [trigger] = await triggers_of(db, pipeline.id)
    assert trigger.skipped_fires == COUNT_CAP  # counted up to the cap...
    assert f"{COUNT_CAP}+ missed fire time(s)" in caplog.text  # ...and said to be more


async def test_downtime_policy_all_runs_each_missed_time_up_to_the_cap(db, account_id):
    clock = FakeClock(utc(2026, 5, 1, 0, 30))
    pipeline = await save(db, account_id, HOURLY, clock.now())
    scheduler = scheduler_for(db, clock, schedule_missed_policy="all", schedule_catchup_max=3)
    clock.set(utc(2026, 5, 1, 9, 40))

    result = await scheduler.tick()

    assert len(result.started) == 3
    assert await fired_at(db, account_id, "hourly") == [
        "2026-05-01T07:00:00Z",
        "2026-05-01T08:00:00Z",
        "2026-05-01T09:00:00Z",
    ]
    [trigger] = await triggers_of(db, pipeline.id)
    assert (trigger.fires, trigger.skipped_fires) == (3, 6)


async def test_downtime_policy_none_runs_only_what_is_on_time(db, account_id):
    clock = FakeClock(utc(2026, 5, 1, 0, 30))
    pipeline = await save(db, account_id, HOURLY, clock.now())
    scheduler = scheduler_for(db, clock, schedule_missed_policy="none")
    clock.set(utc(2026, 5, 1, 9, 40))

    await scheduler.tick()
    assert await fired_at(db, account_id, "hourly") == []
    [trigger] = await triggers_of(db, pipeline.id)
    assert trigger.skipped_fires == 9  # 01:00 .. 09:00, counted, not silently dropped

    clock.set(utc(2026, 5, 1, 10, 0, 20))  # 20 s late: within the grace, on time
    await scheduler.tick()
    assert await fired_at(db, account_id, "hourly") == ["2026-05-01T10:00:00Z"]


async def test_on_time_fires_all_run_even_when_the_scheduler_is_a_little_late(db, account_id):
    source = HOURLY.replace('"0 * * * *"', '"* * * * *"').replace("name: hourly", "name: minutely")
    clock = FakeClock(utc(2026, 5, 1, 0, 0, 5))
    await save(db, account_id, source, clock.now())
    clock.set(utc(2026, 5, 1, 0, 2, 30))  # 00:01 and 00:02 due; the loop was busy for 2.5 minutes

    await scheduler_for(db, clock, schedule_misfire_grace_seconds=120).tick()

    assert await fired_at(db, account_id, "minutely") == ["2026-05-01T00:01:00Z", "2026-05-01T00:02:00Z"]


async def test_two_schedulers_racing_on_one_database_start_one_run_per_fire_time(db, tmp_path, account_id):
    clock = FakeClock(utc(2026, 5, 1, 0, 0, 10))
    source = HOURLY.replace('"0 * * * *"', '"*/5 * * * *"')
    await save(db, account_id, source, clock.now())
    other_db = Database(str(db.url))  # a second process: its own engine and connections
    try:
        first = scheduler_for(db, clock)
        second = scheduler_for(other_db, clock)
        lost = 0
        for _ in range(24):  # two hours, every 5 minutes, both schedulers at once
            clock.advance(timedelta(minutes=5))
            results = await asyncio.gather(first.tick(), second.tick())
            assert sum(len(result.started) for result in results) == 1
            lost += sum(result.lost for result in results)
    finally:
        await other_db.dispose()

    fired = await fired_at(db, account_id, "hourly")
    assert len(fired) == 24
    assert len(set(fired)) == 24
    assert lost <= 24  # a scheduler that listed the schedule as due after the other fired it tries nothing


async def test_a_scheduler_that_lost_the_race_starts_nothing(db, account_id):
    clock = FakeClock(utc(2026, 5, 1, 0, 0, 10))
    source = HOURLY.replace('"0 * * * *"', '"*/5 * * * *"')
    pipeline = await save(db, account_id, source, clock.now())
    first, second = scheduler_for(db, clock), scheduler_for(db, clock)
    clock.set(utc(2026, 5, 1, 0, 10, 1))
    async with db.session() as session:
        [(stale, name)] = await TriggerRepo(session).due_schedules(clock.now())  # both see it due...
    result = await first.tick()  # ...the first fires 00:10 (00:05 was missed: skipped, per policy)
    assert (len(result.started), result.skipped) == (1, 1)

    # the second, from its old listing, fires 00:10 too: the (trigger, fire time) key refuses it
    done = SchedulerPass()
    await second._handle(stale, name, clock.now(), done)
    assert (done.started, done.lost) == ([], 1)

    # a second whose clock lags would fire 00:05, which no run has: the forward-only progress refuses it
    done = SchedulerPass()
    await second._handle(stale, name, utc(2026, 5, 1, 0, 5, 30), done)
    assert (done.started, done.lost) == ([], 1)

    assert await fired_at(db, account_id, "hourly") == ["2026-05-01T00:10:00Z"]
    [trigger] = await triggers_of(db, pipeline.id)
    assert (trigger.fires, trigger.skipped_fires, trigger.fired_through) == (1, 1, utc(2026, 5, 1, 0, 10))


async def test_a_new_revision_keeps_the_schedule_state(db, account_id):
    clock = FakeClock(utc(2026, 5, 1, 0, 30))
    pipeline = await save(db, account_id, HOURLY, clock.now())
    scheduler = scheduler_for(db, clock)
    await scheduler.run(until=utc(2026, 5, 1, 2, 30))
    [before] = await triggers_of(db, pipeline.id)

    clock.advance(timedelta(minutes=10))
    changed = HOURLY.replace("value: 1", "value: 2") + "description: a new revision\n"
    await save(db, account_id, changed, clock.now())
    [after] = await triggers_of(db, pipeline.id)
    assert after.id == before.id
    assert after.revision == 2
    assert after.fires == 2
    await scheduler.run(until=utc(2026, 5, 1, 4, 30))

    runs = await runs_of(db, account_id, "hourly")
    assert [run.trigger["fired_at"][11:16] for run in runs] == ["01:00", "02:00", "03:00", "04:00"]
    assert [run.revision for run in runs] == [1, 1, 2, 2]


async def test_changing_or_removing_a_schedule(db, account_id):
    clock = FakeClock(utc(2026, 5, 1, 0, 30))
    pipeline = await save(db, account_id, HOURLY, clock.now())
    scheduler = scheduler_for(db, clock)
    await scheduler.run(until=utc(2026, 5, 1, 1, 30))

    # another cron is another trigger, counted from the save
    await save(db, account_id, HOURLY.replace('"0 * * * *"', '"30 * * * *"'), clock.now())
    await scheduler.run(until=utc(2026, 5, 1, 3, 0))
    assert [t[11:16] for t in await fired_at(db, account_id, "hourly")] == ["01:00", "02:30"]
    rows = await triggers_of(db, pipeline.id)
    assert [row.active for row in rows] == [False, True]

    # removed: nothing fires
    await save(
        db,
        account_id,
        HOURLY.replace('  - schedule: {cron: "0 * * * *", timezone: UTC}', "  []"),
        clock.now(),
    )
    await scheduler.run(until=utc(2026, 5, 1, 6, 0))
    assert len(await fired_at(db, account_id, "hourly")) == 2

    # back: counted from now, the hours it was off are not "missed"
    await save(db, account_id, HOURLY.replace("value: 1", "value: 3"), clock.now())
    await scheduler.run(until=utc(2026, 5, 1, 7, 0))
    assert [t[11:16] for t in await fired_at(db, account_id, "hourly")] == ["01:00", "02:30", "07:00"]
    first = (await triggers_of(db, pipeline.id))[0]
    assert (first.active, first.skipped_fires, first.fires) == (True, 0, 2)


async def test_schedule_inputs_may_use_the_fire_time(db, account_id):
    source = """
    version: 1
    name: report
    inputs:
      day: {type: string, required: true}
      limit: {type: integer, default: 5}
    triggers:
      - schedule:
          cron: "0 6 * * *"
          timezone: America/New_York
          inputs: {day: "${{ trigger.fired_at }}", limit: 3}
    steps:
      - {id: a, uses: core.set, with: {value: "${{ inputs.day }}"}}
    """
    clock = FakeClock(utc(2026, 7, 1))
    await save(db, account_id, source, clock.now())
    await scheduler_for(db, clock).run(until=utc(2026, 7, 1, 12))

    [run] = await runs_of(db, account_id, "report")
    assert run.inputs == {"day": "2026-07-01T10:00:00Z", "limit": 3}
    assert run.trigger["local_time"] == "2026-07-01T06:00:00-04:00"


async def test_a_fire_time_that_cannot_start_a_run_is_recorded_not_retried_forever(db, account_id):
    source = """
    version: 1
    name: broken
    inputs:
      n: {type: integer, default: 1}
    triggers:
      - schedule: {cron: "0 * * * *", inputs: {n: "${{ trigger.nothing.here }}"}}
    steps:
      - {id: a, uses: core.set, with: {value: 1}}
    """
    clock = FakeClock(utc(2026, 5, 1, 0, 30))
    pipeline = await save(db, account_id, source, clock.now())
    scheduler = scheduler_for(db, clock)

    await scheduler.run(until=utc(2026, 5, 1, 2, 30))

    assert await runs_of(db, account_id, "broken") == []
    [trigger] = await triggers_of(db, pipeline.id)
    assert trigger.skipped_fires == 2
    assert trigger.last_error is not None
    assert "fire time 2026-05-01T02:00:00Z" in trigger.last_error["message"]
    assert "schedule input 'n'" in trigger.last_error["message"]
    assert trigger.fired_through == utc(2026, 5, 1, 2)


async def test_deleting_the_pipeline_deletes_its_schedules(db, account_id):
    clock = FakeClock(utc(2026, 5, 1, 0, 30))
    pipeline = await save(db, account_id, HOURLY, clock.now())
    async with db.session() as session:
        await session.execute(delete(Pipeline).where(Pipeline.id == pipeline.id))
        await session.commit()
    assert await triggers_of(db, pipeline.id) == []
    result = await scheduler_for(db, clock).tick(utc(2026, 5, 2))
    assert result.started == []


async def test_an_idle_loop_rereads_the_database_for_schedules_saved_elsewhere(db, account_id):
    clock = FakeClock(utc(2026, 5, 1, 0, 30))
    scheduler = scheduler_for(db, clock, trigger_idle_seconds=30)
    await scheduler.run(until=utc(2026, 5, 1, 0, 32))
    assert clock.slept[:4] == [30, 30, 30, 30]  # nothing planned: it looks again every 30 s

    await save(db, account_id, HOURLY, clock.now())  # saved by "another process"
    await scheduler.run(until=utc(2026, 5, 1, 1, 0, 30))
    assert await fired_at(db, account_id, "hourly") == ["2026-05-01T01:00:00Z"]


async def test_the_loop_stops_cleanly(db, account_id):
    scheduler = Scheduler(db, queued_runs(db, settings()), settings(trigger_idle_seconds=0.01))
    await scheduler.start()
    scheduler.wake()
    await asyncio.sleep(0.05)
    await scheduler.stop()
    await scheduler.stop()  # twice is fine
