"""Running a pipeline in this process, without server or database (``mashpipe run``).

Same engine and same connectors as the server: only the observer differs (:class:`ConsoleObserver`
reports steps as they start and finish). The run's secrets come from the environment
(:func:`secrets_from_environment`: ``MASHPIPE_SECRET_<NAME>``) and are masked like the server masks them:
in what the observer reports and in the result.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from app.engine.executor import execute
from app.engine.plan import compile_plan
from app.engine.types import RunObserver, RunRequest, RunResult, StepResult, StepStatus
from app.pipelines.spec import PipelineSpec
from app.registry import Registry
from app.runtime.caller import ConnectorCaller
from app.runtime.masking import Masker, MaskingObserver, masking_scope
from app.sdk.http import build_http_client
from app.security.secret_store import referenced_secrets
from app.settings import Settings

SYMBOLS = {
    StepStatus.SUCCEEDED: "ok",
    StepStatus.FAILED: "FAILED",
    StepStatus.SKIPPED: "skipped",
    StepStatus.CANCELLED: "cancelled",
}


class ConsoleObserver:
    """Writes one line per step start and finish through ``write`` (e.g. to stderr), with durations."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write

    async def step_started(self, run_id: str, result: StepResult) -> None:
        self._write(f"  .. {result.step_id} started")

    async def step_finished(self, run_id: str, result: StepResult) -> None:
        status = StepStatus(result.status)
        label = SYMBOLS.get(status, status.value)
        duration = f" in {result.duration_ms} ms" if result.duration_ms is not None else ""
        attempts = f" after {result.attempts} attempts" if result.attempts > 1 else ""
        line = f"  {label} {result.step_id}{duration}{attempts}"
        if result.error is not None and status == StepStatus.FAILED:
            line += f": {result.error.message} [{result.error.code}]"
        self._write(line)


SECRET_PREFIX = "MASHPIPE_SECRET_"
"""``mashpipe run`` reads the secret ``NAME`` from the environment variable ``MASHPIPE_SECRET_NAME``."""


def secrets_from_environment(
    spec: PipelineSpec, environ: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The secrets ``spec`` reads, from ``environ``: ``(values, names missing)``."""
    names = sorted(referenced_secrets(spec.model_dump(mode="json", by_alias=True)))
    values = {name: environ[SECRET_PREFIX + name] for name in names if SECRET_PREFIX + name in environ}
    return values, [name for name in names if name not in values]


async def run_locally(
    spec: PipelineSpec,
    inputs: dict[str, Any],
    settings: Settings,
    registry: Registry,
    *,
    observer: RunObserver,
    http_transport: httpx.AsyncBaseTransport | None = None,
    cancel: asyncio.Event | None = None,
    secrets: Mapping[str, str] | None = None,
) -> RunResult:
    """Run ``spec`` once with already coerced ``inputs`` (and ``secrets``) and return the engine's result,
    its secret values masked."""
    plan = compile_plan(spec)
    http = build_http_client(settings, transport=http_transport)
    masker = Masker((secrets or {}).values())
    try:
        caller = ConnectorCaller(registry, http, settings)
        request = RunRequest(
            run_id=uuid.uuid4().hex,
            inputs=inputs,
            trigger={"kind": "manual"},
            secrets=dict(secrets or {}),
            started_at=datetime.now(UTC),
        )
        with masking_scope(masker):
            result = await execute(
                plan,
                request,
                caller=caller,
                observer=MaskingObserver(observer, masker) if masker else observer,
                cancel=cancel,
            )
    finally:
        await http.aclose()
    if not masker:
        return result
    return dataclasses.replace(
        result,
        outputs=masker.value(result.outputs),
        steps={sid: masker.step(step) for sid, step in result.steps.items()},
        error=masker.error(result.error),
    )
