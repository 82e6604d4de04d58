"""Small values every part of the run runtime shares: the clock, the error shape, the final states.

One definition each, used by :mod:`app.runtime.service` and the modules it is made of
(:mod:`app.runtime.run_execution`, :mod:`app.runtime.run_waits`), and meant for any other module
recording runs (e.g. :mod:`app.runtime.direct_runs`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.engine.types import RunStatus

FINISHED = frozenset({RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value})
"""The statuses a run ends in; a run in one of them never changes again."""


def now() -> datetime:
    """The current time, timezone-aware in UTC (as every run timestamp is recorded)."""
    return datetime.now(UTC)


def error_dict(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """A run's recorded error: ``{"code", "message", "details"}`` (the API's error shape)."""
    return {"code": code, "message": message, "details": details}
