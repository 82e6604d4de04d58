"""Running the example pipelines of `examples/` end to end in tests: validated with the installed
registry, executed by the engine with the real connectors (their HTTP mocked by the test)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.engine.executor import execute
from app.engine.plan import compile_plan
from app.engine.types import NullObserver, RunRequest, RunResult
from app.pipelines.inputs import coerce_inputs
from app.pipelines.validate import validate_source
from app.registry import Registry
from app.runtime.caller import ConnectorCaller
from app.sdk.http import build_http_client
from app.sdk.testing import settings_for_tests
from app.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def run_example(
    registry: Registry,
    name: str,
    inputs: dict[str, Any] | None = None,
    trigger: dict[str, Any] | None = None,
    *,
    connections: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    run_id: str | None = None,
    started_at: datetime | None = None,
) -> RunResult:
    """Validate ``examples/<name>.yaml`` (no problem allowed) and run it once; ``connections`` by name."""
    result = validate_source((EXAMPLES / f"{name}.yaml").read_text(), registry)
    assert result.problems == []
    spec = result.require_spec()
    settings = settings or settings_for_tests()

    async def resolve(account_id: str | None, connection: str) -> Any:
        return (connections or {}).get(connection)

    async with build_http_client(settings) as http:
        request = RunRequest(
            run_id=run_id or uuid.uuid4().hex,
            inputs=coerce_inputs(spec, inputs or {}),
            trigger=trigger or {"kind": "manual"},
            started_at=started_at or datetime.now(UTC),
        )
        caller = ConnectorCaller(
            registry, http, settings, connections=resolve if connections is not None else None
        )
        return await execute(compile_plan(spec), request, caller=caller, observer=NullObserver())


def failures(result: RunResult) -> dict[str, str]:
    """The error message of each step that has one."""
    return {sid: step.error.message for sid, step in result.steps.items() if step.error is not None}


def check_example_file(registry: Registry, name: str) -> None:
    """``examples/<name>.yaml`` is valid and its pipeline is named after the file."""
    result = validate_source((EXAMPLES / f"{name}.yaml").read_text(), registry)
    assert result.problems == []
    assert result.require_spec().name == name
