"""Small values every part of the run runtime shares: the clock, the error shape, the final states.

One definition each, used by :mod:`app.runtime.service` and the modules it is made of
(:mod:`app.runtime.run_execution`, :mod:`app.runtime.run_waits`), and meant for any other module
recording runs (e.g. :mod:`app.runtime.direct_runs`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from app.engine.types import RunResult, RunStatus
from app.runtime.masking import Masker, masking_scope
from app.runtime.output_limits import outputs_error

logger = logging.getLogger("mashpipe.runtime")

FINISHED = frozenset({RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value})
"""The statuses a run ends in; a run in one of them never changes again."""


def now() -> datetime:
    """The current time, timezone-aware in UTC (as every run timestamp is recorded)."""
    return datetime.now(UTC)


def error_dict(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """A run's recorded error: ``{"code", "message", "details"}`` (the API's error shape)."""
    return {"code": code, "message": message, "details": details}


def final_state(
    result: RunResult, masker: Masker, max_output_bytes: int
) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
    """``(status, outputs, error)`` to record for an engine result: secrets masked, outputs over
    ``max_output_bytes`` failing the run (``outputs_too_large``), a state that is not final failing it."""
    status = RunStatus(result.status).value
    outputs = masker.value(result.outputs)
    error = masker.value(result.error.to_dict()) if result.error is not None else None
    too_large = outputs_error(outputs, max_output_bytes)
    if too_large is not None:
        return RunStatus.FAILED.value, None, too_large
    if status not in FINISHED:
        return (
            RunStatus.FAILED.value,
            outputs,
            error_dict("internal_error", f"the engine ended the run in state {status!r}"),
        )
    return status, outputs, error


def unexpected_failure(
    run_id: str, exc: BaseException, masker: Masker
) -> tuple[str, dict[str, Any] | None, dict[str, Any]]:
    """``(status, outputs, error)`` of a run that failed with an unexpected exception, logged with its
    traceback (secrets masked in the log and in the error)."""
    with masking_scope(masker):
        logger.exception("run %s failed with an unexpected error", run_id)
    error = error_dict("internal_error", masker.text(f"the run failed: {type(exc).__name__}: {exc}"))
    return RunStatus.FAILED.value, None, error
