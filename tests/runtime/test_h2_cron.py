"""Fire times of cron schedules in time zones, DST transitions included (app.runtime.cron)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.errors import BadRequest
from app.runtime.cron import CronSchedule


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(schedule: CronSchedule, moments: list[datetime]) -> list[str]:
    return [moment.astimezone(schedule.zone).isoformat() for moment in moments]


def test_weekday_mornings_in_paris():
    schedule = CronSchedule("0 8 * * 1-5", "Europe/Paris")
    # Thursday 2026-11-26 (CET, UTC+1)
    assert local(schedule, schedule.next_times(utc(2026, 11, 26), 3)) == [
        "2026-11-26T08:00:00+01:00",
        "2026-11-27T08:00:00+01:00",
        "2026-11-30T08:00:00+01:00",  # the weekend is skipped
    ]


def test_next_after_is_strictly_after():
    schedule = CronSchedule("0 * * * *")
    assert schedule.next_after(utc(2026, 1, 1, 10)) == utc(2026, 1, 1, 11)
    assert schedule.next_after(utc(2026, 1, 1, 10, 0, 0) - timedelta(microseconds=1)) == utc(2026, 1, 1, 10)


def test_spring_forward_a_skipped_fixed_time_fires_once_when_the_clock_jumps():
    # 2026-03-29 in Europe/Paris: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day
    schedule = CronSchedule("30 2 * * *", "Europe/Paris")
    times = schedule.between(utc(2026, 3, 27), utc(2026, 3, 31))
    assert local(schedule, times) == [
        "2026-03-27T02:30:00+01:00",
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",  # not skipped: at the jump, 01:00 UTC
        "2026-03-30T02:30:00+02:00",
    ]
    assert times[2] == utc(2026, 3, 29, 1)


def test_spring_forward_several_skipped_times_collapse_into_one_fire():
    schedule = CronSchedule("*/10 2 * * *", "Europe/Paris")
    day = schedule.between(utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert day == [utc(2026, 3, 29, 1)]  # 02:00..02:50 do not exist: one run at 03:00 CEST


def test_fall_back_a_repeated_fixed_time_fires_at_its_first_occurrence_only():
    # 2026-10-25 in Europe/Paris: 03:00 CEST becomes 02:00 CET; 02:30 happens twice
    schedule = CronSchedule("30 2 * * *", "Europe/Paris")
    times = schedule.between(utc(2026, 10, 24), utc(2026, 10, 27))
    assert local(schedule, times) == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",  # first occurrence (00:30 UTC); not again at 01:30 UTC
        "2026-10-26T02:30:00+01:00",
    ]
    # asked from inside the repeated hour, the second occurrence is not a fire time either
    assert schedule.next_after(utc(2026, 10, 25, 1, 15)) == utc(2026, 10, 26, 1, 30)


def test_every_hour_schedules_follow_real_time_through_both_transitions():
    schedule = CronSchedule("0 * * * *", "Europe/Paris")
    fall = schedule.between(utc(2026, 10, 24, 22), utc(2026, 10, 25, 3))
    assert fall == [utc(2026, 10, 24, 23), *(utc(2026, 10, 25, h) for h in range(4))]  # hourly, both passes
    assert local(schedule, fall)[1:3] == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]
    spring = schedule.between(utc(2026, 3, 28, 23), utc(2026, 3, 29, 3))
    assert spring == [utc(2026, 3, 29, h) for h in range(4)]  # hourly, nothing made up for the gap


def test_a_quarter_hourly_day_has_one_fire_per_quarter_of_real_time():
    schedule = CronSchedule("*/15 * * * *", "Europe/Paris")
    assert len(schedule.between(utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))) == 25 * 4
    assert len(schedule.between(utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))) == 23 * 4


def test_southern_hemisphere_and_half_hour_shifts():
    # Lord Howe Island moves its clocks by 30 minutes (02:00 -> 02:30 on 2026-10-04)
    schedule = CronSchedule("15 2 * * *", "Australia/Lord_Howe")
    times = local(schedule, schedule.between(utc(2026, 10, 2, 12), utc(2026, 10, 5, 12)))
    assert times == [
        "2026-10-03T02:15:00+10:30",
        "2026-10-04T02:30:00+11:00",  # 02:15 skipped: fires at the jump
        "2026-10-05T02:15:00+11:00",
    ]


def test_between_with_a_limit_gives_the_latest_without_walking_everything():
    schedule = CronSchedule("* * * * *")
    latest = schedule.between(utc(2025, 1, 1), utc(2026, 1, 1), limit=2)
    assert latest == [utc(2025, 12, 31, 23, 59), utc(2026, 1, 1)]
    assert schedule.count_between(utc(2025, 1, 1), utc(2026, 1, 1), cap=500) == 500
    assert schedule.between(utc(2026, 1, 1), utc(2026, 1, 1)) == []


def test_a_schedule_that_never_fires():
    schedule = CronSchedule("0 0 30 2 *")
    assert schedule.next_after(utc(2026, 1, 1)) is None
    assert schedule.next_times(utc(2026, 1, 1), 3) == []


def test_leap_days():
    schedule = CronSchedule("0 12 29 2 *", "America/New_York")
    assert schedule.next_times(utc(2026, 1, 1), 2) == [utc(2028, 2, 29, 17), utc(2032, 2, 29, 17)]


@pytest.mark.parametrize(("cron", "zone"), [("not a cron", "UTC"), ("0 8 * * *", "Mars/Olympus")])
def test_bad_schedules_are_clear_errors(cron, zone):
    with pytest.raises(BadRequest):
        CronSchedule(cron, zone)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="aware"):
        CronSchedule("0 * * * *").next_after(datetime(2026, 1, 1))
