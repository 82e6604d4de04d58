"""Per-pipeline concurrency limits: ``concurrency: {limit, on_conflict: queue | skip | fail}``.

The limit itself is enforced by the database (:meth:`app.storage.repositories.RuntimeRepo.claim`
counts the pipeline's running runs inside the claiming ``UPDATE``), so it holds across processes.
What lives here is the in-process side of ``on_conflict: queue``: runs that found their pipeline
at its limit wait in a FIFO per pipeline (:class:`PipelineGate`) instead of holding a worker, so
the global workers go on with other pipelines' runs (no head-of-line blocking). When a run of the
pipeline finishes, the oldest waiting run is handed back to the queue (*released*); a run that
arrives while others of its pipeline wait goes behind them, even if a slot is free, so the
pipeline's runs start in the order they were submitted.

``skip`` and ``fail`` are decided when the run is recorded (see :func:`conflict_error`): the run is
recorded anyway, finished at once, so it stays visible in the run history.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from app.engine.types import RunStatus
from app.pipelines.spec import PipelineSpec

OnConflict = Literal["queue", "skip", "fail"]


@dataclass(frozen=True, slots=True)
class Limit:
    """The concurrency limit of a pipeline revision."""

    limit: int
    on_conflict: OnConflict


def limit_of(spec: PipelineSpec) -> Limit | None:
    """The revision's limit, or None when its runs are bounded only by the global limit."""
    if spec.concurrency is None:
        return None
    return Limit(spec.concurrency.limit, spec.concurrency.on_conflict)


def conflict_error(pipeline_name: str, limit: Limit) -> tuple[str, dict[str, Any]]:
    """``(final status, error)`` of a run refused by a ``skip`` or ``fail`` limit."""
    runs = "run" if limit.limit == 1 else "runs"
    if limit.on_conflict == "skip":
        return RunStatus.CANCELLED.value, {
            "code": "concurrency_skipped",
            "message": (
                f"skipped: pipeline {pipeline_name!r} already has {limit.limit} {runs} in progress "
                f"(concurrency limit {limit.limit}, on_conflict: skip)"
            ),
            "details": {"limit": limit.limit, "on_conflict": "skip"},
        }
    return RunStatus.FAILED.value, {
        "code": "concurrency_limit",
        "message": (
            f"pipeline {pipeline_name!r} already has {limit.limit} {runs} in progress "
            f"(concurrency limit {limit.limit}, on_conflict: fail)"
        ),
        "details": {"limit": limit.limit, "on_conflict": "fail"},
    }


class PipelineGate:
    """Runs of ``on_conflict: queue`` pipelines waiting for a slot in this process, FIFO per pipeline.

    Waiting runs stay ``queued`` in the database: after a restart they are re-enqueued oldest first.
    Not thread-safe: used from the event loop only.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, deque[str]] = {}
        self._released: dict[str, set[str]] = {}
        self._pipeline_of: dict[str, str] = {}

    @property
    def waiting(self) -> int:
        """Runs waiting for a slot (released ones not counted)."""
        return sum(len(runs) for runs in self._waiting.values())

    def waiting_runs(self, pipeline_id: str) -> list[str]:
        """The pipeline's waiting runs, first to start first."""
        return list(self._waiting.get(pipeline_id, ()))

    def should_wait(self, pipeline_id: str, run_id: str) -> bool:
        """True when the run must queue behind runs of its pipeline that wait already."""
        if run_id in self._released.get(pipeline_id, ()):
            return False
        return bool(self._waiting.get(pipeline_id))

    def park(self, pipeline_id: str, run_id: str) -> None:
        """Make the run wait for a slot: at the back, or back at the front when it had been released
        (it keeps its turn)."""
        released = self._released.get(pipeline_id)
        was_released = released is not None and run_id in released
        if was_released:
            assert released is not None
            released.discard(run_id)
            if not released:
                del self._released[pipeline_id]
        queue = self._waiting.setdefault(pipeline_id, deque())
        if run_id in queue:
            return
        if was_released:
            queue.appendleft(run_id)
        else:
            queue.append(run_id)
        self._pipeline_of[run_id] = pipeline_id

    def release(self, pipeline_id: str) -> str | None:
        """Take the pipeline's oldest waiting run to hand it back to the queue (a slot is free)."""
        queue = self._waiting.get(pipeline_id)
        if not queue:
            return None
        run_id = queue.popleft()
        if not queue:
            del self._waiting[pipeline_id]
        self._released.setdefault(pipeline_id, set()).add(run_id)
        return run_id

    def started(self, run_id: str) -> None:
        """The run was claimed: it no longer waits."""
        self._forget(run_id)

    def dropped(self, run_id: str) -> str | None:
        """The run will not start (cancelled, gone). Returns its pipeline when it had been released,
        so the caller releases the next one in its place."""
        return self._forget(run_id)

    def idle_pipelines(self) -> list[str]:
        """Pipelines with waiting runs and none released: their slot may have been freed by another
        process (a periodic wake-up releases one run of each to try again)."""
        return [pipeline for pipeline in self._waiting if not self._released.get(pipeline)]

    def _forget(self, run_id: str) -> str | None:
        pipeline_id = self._pipeline_of.pop(run_id, None)
        if pipeline_id is None:
            return None
        released = self._released.get(pipeline_id)
        if released is not None and run_id in released:
            released.discard(run_id)
            if not released:
                del self._released[pipeline_id]
            return pipeline_id
        queue = self._waiting.get(pipeline_id)
        if queue is not None and run_id in queue:
            queue.remove(run_id)
            if not queue:
                del self._waiting[pipeline_id]
        return None


__all__ = ["Limit", "OnConflict", "PipelineGate", "conflict_error", "limit_of"]
