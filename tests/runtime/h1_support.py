"""Helpers of the H1 runtime tests: a caller whose calls a test holds and releases, a running service
with its real in-process queue, rows written as a dead process would have left them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.engine.types import OperationCall, RunStatus, StepResult, StepStatus
from app.errors import UpstreamError
from app.runtime.queue import InProcessQueue
from app.runtime.service import RunService
from app.settings import Settings
from app.storage.db import Database
from app.storage.repositories import RunRepo


def pipeline_source(name: str, *, concurrency: str | None = None, retry: int | None = None) -> str:
    """A pipeline whose one step ``work`` calls ``http.get_json`` (held by :class:`HeldCaller`)."""
    lines = ["version: 1", f"name: {name}"]
    if concurrency:
        lines.append(f"concurrency: {concurrency}")
    lines += [
        "steps:",
        "  - id: work",
        "    uses: http.get_json",
        "    with: {url: 'http://upstream.test/work'}",
    ]
    if retry:
        lines.append(f"    retry: {{attempts: {retry}, initial: 10ms}}")
    lines += ["outputs:", "  result: ${{ steps.work.output }}", ""]
    return "\n".join(lines)


TWO_STEPS = """\
version: 1
name: two
steps:
  - id: first
    uses: http.get_json
    with: {{url: 'http://upstream.test/first'}}
  - id: second
    uses: http.get_json
    with: {{url: "http://upstream.test/second/${{{{ steps.first.output.n }}}}"}}
{retry}outputs:
  total: ${{{{ steps.second.output.n + steps.first.output.n }}}}
"""


def two_steps(retry: int | None = None) -> str:
    """``first`` then ``second`` (which uses first's output); ``second`` may have a retry policy."""
    policy = f"    retry: {{attempts: {retry}, initial: 10ms}}\n" if retry else ""
    return TWO_STEPS.format(retry=policy)


@dataclass
class HeldCaller:
    """An OperationCaller: each call waits until the test releases its run (or answers at once when
    ``hold`` is False); answers ``{"n": ...}``. Records every call and the peak of concurrent calls
    per pipeline-name prefix of the run."""

    hold: bool = True
    answers: dict[str, Any] = field(default_factory=dict)  # step id -> value or exception
    calls: list[OperationCall] = field(default_factory=list)
    started: dict[str, asyncio.Event] = field(default_factory=dict)
    releases: dict[str, asyncio.Event] = field(default_factory=dict)
    active: set[str] = field(default_factory=set)
    order: list[str] = field(default_factory=list)  # run ids in the order their first call started

    def _event(self, table: dict[str, asyncio.Event], run_id: str) -> asyncio.Event:
        return table.setdefault(run_id, asyncio.Event())

    async def wait_started(self, run_id: str) -> None:
        await self._event(self.started, run_id).wait()

    def release(self, run_id: str) -> None:
        self._event(self.releases, run_id).set()

    def calls_of(self, step_id: str) -> list[OperationCall]:
        return [call for call in self.calls if call.step_id == step_id]

    async def __call__(self, call: OperationCall) -> Any:
        self.calls.append(call)
        if call.run_id not in self.order:
            self.order.append(call.run_id)
        self.active.add(call.run_id)
        self._event(self.started, call.run_id).set()
        try:
            if self.hold:
                await self._event(self.releases, call.run_id).wait()
            answer = self.answers.get(call.step_id, {"n": 1})
            if isinstance(answer, Exception):
                raise answer
            return answer
        finally:
            self.active.discard(call.run_id)


def upstream_500() -> UpstreamError:
    """A transient failure (retried by a retry policy)."""
    return UpstreamError("upstream answered 500", code="http_500", retry_kind="http_5xx")


@asynccontextmanager
async def running_service(
    db: Database, settings: Settings, caller: Any, *, workers: int = 4
) -> AsyncIterator[RunService]:
    """A RunService with its real InProcessQueue started (stopped at the end)."""
    service = RunService(db, settings, caller)
    queue = InProcessQueue(service.execute, max_concurrent=workers)
    service.attach_queue(queue)
    await queue.start()
    try:
        yield service
    finally:
        await queue.stop()


async def until(predicate: Callable[[], Any], *, rounds: int = 2000) -> None:
    """Let the loop run until ``predicate()`` (sync or async) is true; fails after ``rounds`` turns."""
    for _ in range(rounds):
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never became true")


async def load_run(db: Database, run_id: str) -> tuple[Any, dict[str, Any]]:
    """The stored run and its step rows by step id (typed loosely: tests index their JSON freely)."""
    async with db.session() as session:
        repo = RunRepo(session)
        run = await repo.get_any(run_id)
        assert run is not None
        return run, {step.step_id: step for step in await repo.steps(run_id)}


async def status_of(db: Database, run_id: str) -> str:
    return str((await load_run(db, run_id))[0].status)


async def leave_running(
    db: Database,
    run_id: str,
    steps: list[StepResult],
    *,
    heartbeat_at: datetime | None = None,
) -> None:
    """Write the run as a process that died mid-run leaves it: ``running`` with these step rows."""
    now = datetime.now(UTC)
    async with db.session() as session:
        repo = RunRepo(session)
        assert await repo.mark_running(run_id, now)
        await repo.upsert_steps(run_id, steps, 262_144)
        run = await repo.get_any(run_id)
        assert run is not None
        run.heartbeat_at = heartbeat_at
        await session.commit()


def succeeded(step_id: str, output: Any) -> StepResult:
    now = datetime.now(UTC)
    return StepResult(step_id, StepStatus.SUCCEEDED, 1, now, now, output)


def running(step_id: str, attempts: int = 0) -> StepResult:
    return StepResult(step_id, StepStatus.RUNNING, attempts, datetime.now(UTC))


FINISHED = (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value)
