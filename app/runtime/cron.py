"""Fire times of a schedule: a cron expression read in an IANA time zone, as UTC instants.

A cron expression names wall-clock times (``30 2 * * *``: 02:30 every day). Daylight saving time
makes some wall-clock times not exist (spring forward) and others exist twice (fall back); this
module decides, once and for all, which instants such a schedule fires at. The rules are those of
Vixie cron, the classic Unix cron:

* **Fixed-hour schedules** (the hour field does not cover all 24 hours, e.g. ``30 2 * * *``) fire
  at most once per wall-clock time per day:

  - a time in the hour that is skipped (02:30 on a spring-forward day in Europe/Paris) fires once,
    at the instant the clock jumps (03:00 local time, the first instant after the gap). Several
    skipped times collapse into that one instant: one run;
  - a time that occurs twice (02:30 on a fall-back day) fires only at its first occurrence.

* **Every-hour schedules** (the hour field is ``*``, e.g. ``*/15 * * * *``) follow real time:
  they fire at each instant whose local wall-clock time matches, so they keep firing through the
  repeated hour (both passes) and have nothing to make up for in a skipped hour.

Every function takes and returns aware UTC datetimes; instants are strictly increasing, never
repeated. :class:`CronSchedule` is immutable and cheap to build; build one per trigger.
"""

from __future__ import annotations

import heapq
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from croniter import croniter
from croniter.croniter import CroniterError

from app.errors import BadRequest

__all__ = ["CronSchedule"]

_EPSILON = timedelta(seconds=1)
_SEARCH_WINDOW = timedelta(days=2)  # a zone changes its offset at most once in this span
_MAX_STEPS = 10_000  # a guard against endless loops; real schedules take a few steps per fire time


def _to_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("pass an aware datetime (UTC), not a naive one")
    return moment.astimezone(UTC)


class CronSchedule:
    """The fire times of ``cron`` in ``timezone`` (see the module docstring for DST).

    ``BadRequest`` when the expression or the zone is invalid (a saved pipeline has both checked).
    """

    def __init__(self, cron: str, timezone: str = "UTC") -> None:
        self.cron = cron
        self.timezone = timezone
        try:
            self.zone = zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise BadRequest(f"unknown time zone {timezone!r}") from None
        if not croniter.is_valid(cron):
            raise BadRequest(f"{cron!r} is not a valid cron expression")
        hours = croniter(cron).expanded[1]
        self.every_hour: bool = hours == ["*"] or set(hours) >= set(range(24))
        """True: the schedule follows real time through DST changes; False: wall-clock rules."""

    def __repr__(self) -> str:
        return f"CronSchedule({self.cron!r}, {self.timezone!r})"

    # -- the zone ---------------------------------------------------------------------------------

    def _offset(self, instant: datetime) -> timedelta:
        offset = instant.astimezone(self.zone).utcoffset()
        return offset if offset is not None else timedelta(0)

    def _local(self, instant: datetime) -> datetime:
        """The naive wall-clock time at ``instant``."""
        return (instant + self._offset(instant)).replace(tzinfo=None)

    def _first_change(self, after: datetime, until: datetime) -> datetime:
        """The first instant in ``(after, until]`` whose offset differs from ``after``'s (one change
        is assumed in the span; the search is to the second, as zones change on whole seconds)."""
        base = self._offset(after)
        low, high = int(after.timestamp()), int(until.timestamp())
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset(datetime.fromtimestamp(middle, UTC)) == base:
                low = middle
            else:
                high = middle
        return datetime.fromtimestamp(high, UTC)

    def _first_occurrence(self, local: datetime, instant: datetime) -> bool:
        """Whether ``instant`` is the first (or only) occurrence of the wall-clock time ``local``."""
        return local.replace(tzinfo=self.zone, fold=0).astimezone(UTC) == instant

    def _next_match(self, local: datetime) -> datetime | None:
        """The first naive wall-clock time matching the expression strictly after ``local``."""
        try:
            found = croniter(self.cron, local).get_next(datetime)
        except CroniterError:  # e.g. "0 0 30 2 *": no such date
            return None
        return found if isinstance(found, datetime) else None

    # -- fire times -------------------------------------------------------------------------------

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after``; None when the schedule never fires again."""
        floor = _to_utc(after)  # fire times must be > floor
        instant = floor  # the offset in effect is read here
        local = self._local(instant)  # wall-clock matches must be > local
        for _ in range(_MAX_STEPS):
            offset = self._offset(instant)
            match = self._next_match(local)
            if match is None:
                return None
            candidate = (match - offset).replace(tzinfo=UTC)
            if self._local(candidate) == match:  # the wall-clock time exists with the offset in effect
                if candidate <= floor or (
                    not self.every_hour and not self._first_occurrence(match, candidate)
                ):
                    instant, local = max(instant, candidate), match  # a fixed-hour time fires once
                    continue
                return candidate
            # The offset changes before ``candidate``: find that change near the candidate (nothing
            # matches between ``local`` and ``match``, so the instants before that window cannot fire).
            start = max(instant, candidate - _SEARCH_WINDOW)
            if start > instant:
                instant, local = start, self._local(start)
                continue
            change = self._first_change(instant, candidate)
            new_offset = self._offset(change)
            if (
                new_offset > offset
            ):  # spring forward: wall-clock times [change+offset, change+new) do not exist
                gap_end = (change + new_offset).replace(tzinfo=None)
                if match < gap_end:
                    if not self.every_hour and change > floor:
                        return change  # a skipped fixed-hour time fires as the clock jumps
                    instant, local = change, gap_end - _EPSILON
                    continue
                instant, local = change, match - _EPSILON
            else:  # fall back: wall-clock times [change+new, change+offset) come again after change
                if self.every_hour:
                    instant, local = change, (change + new_offset).replace(tzinfo=None) - _EPSILON
                else:  # fixed-hour times already had their first occurrence
                    instant, local = change, max(match, (change + offset).replace(tzinfo=None)) - _EPSILON
        raise RuntimeError(f"{self!r}: no fire time found after {after.isoformat()} in {_MAX_STEPS} steps")

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Fire times strictly after ``after``, in order, without end (or until the schedule ends)."""
        current: datetime | None = _to_utc(after)
        while current is not None:
            current = self.next_after(current)
            if current is not None:
                yield current

    def next_times(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times strictly after ``after`` (fewer when the schedule ends)."""
        times: list[datetime] = []
        for moment in self.iter_after(after):
            times.append(moment)
            if len(times) >= count:
                break
        return times

    def between(self, after: datetime, until: datetime, *, limit: int | None = None) -> list[datetime]:
        """Fire times in ``(after, until]``, oldest first; with ``limit``, only the LATEST ``limit``
        of them (found without walking the whole span, so a long downtime stays cheap)."""
        after, until = _to_utc(after), _to_utc(until)
        if until <= after:
            return []
        if limit is None:
            return list(self._walk(after, until))
        if limit <= 0:
            return []
        span = timedelta(hours=1)
        while True:
            start = max(after, until - span)
            found = heapq.nlargest(limit, self._walk(start, until))
            if len(found) >= limit or start == after:
                return sorted(found)
            span *= 4

    def count_between(self, after: datetime, until: datetime, *, cap: int) -> int:
        """How many fire times lie in ``(after, until]``, counting at most ``cap``."""
        count = 0
        for _ in self._walk(_to_utc(after), _to_utc(until)):
            count += 1
            if count >= cap:
                break
        return count

    def _walk(self, after: datetime, until: datetime) -> Iterator[datetime]:
        for moment in self.iter_after(after):
            if moment > until:
                return
            yield moment
