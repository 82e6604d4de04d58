"""runs.step_states: a finished run's steps written in one JSON document and read back as step rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from app.engine.types import StepError, StepResult, StepStatus
from app.storage.repositories.run_writes import FinishedRun, compact_step_states
from app.storage.repositories.runs import read_step_states

T0 = datetime(2026, 11, 26, 9, 30, 0, 123456, tzinfo=UTC)


def finished(*steps: StepResult) -> FinishedRun:
    return FinishedRun(
        id="run1",
        account_id="a",
        pipeline_id="p",
        pipeline_name="n",
        revision=1,
        status="succeeded",
        trigger={"kind": "endpoint"},
        inputs={},
        outputs={},
        error=None,
        created_at=T0,
        started_at=T0,
        finished_at=T0,
        steps=list(steps),
        compact=True,
    )


def step(step_id: str, started: datetime | None, **values: object) -> StepResult:
    result = StepResult(step_id=step_id, status=StepStatus.SUCCEEDED, attempts=1)
    result.started_at = started
    result.finished_at = None if started is None else started + timedelta(milliseconds=3)
    for name, value in values.items():
        setattr(result, name, value)
    return result


def test_the_states_read_back_as_written_in_the_order_the_steps_started() -> None:
    paris = timezone(timedelta(hours=1))
    error = StepError(code="boom", message="it broke", details={"n": 1})
    steps = (
        step("later", T0 + timedelta(seconds=1), output={"big": "x" * 400}),
        step("first", T0.astimezone(paris), output=[1, 2.5, "é", None], logs=["a line"]),
        step("never", None, status=StepStatus.SKIPPED),
        step("failed", T0 + timedelta(seconds=2), status=StepStatus.FAILED, error=error),
    )
    text = compact_step_states(finished(*steps), max_output_bytes=256)
    rows = read_step_states("run1", orjson.loads(text))
    assert [row.step_id for row in rows] == ["first", "later", "failed", "never"]
    first, later, failed, never = rows
    assert first.started_at == T0
    assert first.started_at.tzinfo is not None
    assert first.started_at.utcoffset() == timedelta(0)  # written in UTC whatever the offset given
    assert first.output == [1, 2.5, "é", None]
    assert first.output_truncated is False
    assert first.logs == ["a line"]
    assert later.output_truncated is True
    assert later.output["truncated"] is True
    assert later.output["size"] == len(orjson.dumps({"big": "x" * 400}))
    assert failed.status == "failed"
    assert failed.error == error.to_dict()
    assert never.status == "skipped"
    assert never.started_at is None
    assert never.output is None
    assert all(row.run_id == "run1" for row in rows)
    assert len({row.id for row in rows}) == 4


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        compact_step_states(finished(step("s", datetime(2026, 1, 1))), max_output_bytes=256)
