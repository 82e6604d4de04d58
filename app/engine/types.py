"""The contract between the pure engine and the host that runs it (server runtime, CLI, tests, bench).

The engine knows nothing of storage, HTTP or connectors. The host gives it:

* an :class:`OperationCaller` that performs every non-``core.*`` step call (connector operations);
* a :class:`RunObserver` told of every state change, so the host can persist it as it happens;
* optionally the results of steps finished by an earlier attempt of the run (``prior``), which the
  engine reuses instead of running those steps again (retry from the first failed step, resume).

Run state is plain, serializable data (:class:`StepResult`, :class:`RunResult`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (StepStatus.PENDING, StepStatus.RUNNING)


@dataclass(slots=True)
class StepError:
    code: str
    message: str
    details: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


@dataclass(slots=True)
class StepResult:
    step_id: str
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output: Any = None
    error: StepError | None = None
    logs: list[str] = field(default_factory=list)

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)


@dataclass(slots=True)
class RunResult:
    status: RunStatus
    outputs: dict[str, Any] | None
    steps: dict[str, StepResult]
    error: StepError | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(slots=True)
class OperationCall:
    """One call of a connector operation, with every ``${{ }}`` already evaluated."""

    uses: str  # "CONNECTOR.OPERATION"
    params: dict[str, Any]
    connection: str | None
    run_id: str
    step_id: str
    attempt: int
    index: int | None = None  # position in for_each, else None
    timeout: float | None = None
    log: list[str] | None = None  # lines the operation logs land in (the step's log)


class OperationCaller(Protocol):
    """Performs connector operations. Raises ``app.errors.StepError`` subclasses on failure;
    ``retry_kind`` on the error decides whether the engine retries."""

    async def __call__(self, call: OperationCall) -> Any: ...


class RunObserver(Protocol):
    """Told of state changes as they happen; the server persists them, the CLI prints them."""

    async def step_started(self, run_id: str, result: StepResult) -> None: ...

    async def step_finished(self, run_id: str, result: StepResult) -> None: ...


class NullObserver:
    async def step_started(self, run_id: str, result: StepResult) -> None:
        return None

    async def step_finished(self, run_id: str, result: StepResult) -> None:
        return None


class StepStates:
    """An observer keeping each step's latest state in :attr:`states` (by step id, in the order the steps
    started), for a host that only needs them at the end of a run, or of an interrupted one.

    The engine fills :attr:`states` itself as steps start and finish, with its own state objects (no
    copies, no calls): a state may still change while its step runs, and is final once it finished.
    Called as a plain observer (by anything but the engine), it keeps what it is given."""

    def __init__(self) -> None:
        self.states: dict[str, StepResult] = {}

    async def step_started(self, run_id: str, result: StepResult) -> None:
        self.states[result.step_id] = result

    async def step_finished(self, run_id: str, result: StepResult) -> None:
        self.states[result.step_id] = result


@dataclass(slots=True)
class RunRequest:
    """Everything the engine needs to execute one run."""

    run_id: str
    inputs: dict[str, Any]  # already validated and coerced against the pipeline's inputs
    trigger: dict[str, Any] = field(default_factory=lambda: {"kind": "manual"})
    secrets: dict[str, str] = field(default_factory=dict)
    started_at: datetime | None = None
    prior: dict[str, StepResult] = field(default_factory=dict)  # succeeded/skipped steps to reuse
    # Attempts an interrupted execution already made of a step (resume after a restart): the step's
    # retry budget goes on from there instead of starting over.
    attempts_used: dict[str, int] = field(default_factory=dict)
