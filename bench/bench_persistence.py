"""Benchmark 4, persistence: the six-step pipeline run through the runtime's ``RunService``.

The persisted variant does what the server does for one run, on a real SQLite file in a temporary
folder (migrated with ``Database.upgrade``): ``create_run`` (inputs coerced, run recorded as queued,
committed), then ``execute`` (claim: queued -> running; the engine with the storage-backed observer,
which records the steps' states in background batches; the final state). The other variant is the
same compiled plan executed by the engine alone with a null observer. Target: < 2x (wall time); the
CPU time of both (every thread of the process) is reported too, as it is less hurt by a busy machine.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.engine_host import NoConnectors, compile_plan, run_plan
from bench.harness import BenchConfig, BenchResult, Line, Target, measure, median, profile_async, require
from bench.workload import SIX_STEPS_INPUTS, SIX_STEPS_YAML, load_spec, make_items, six_steps_baseline

KEY = "persistence"
TITLE = "Persistence: 6-step run through RunService on SQLite vs the engine alone"
TARGET_RATIO = 2.0
ACCOUNT = "bench"


async def run(config: BenchConfig) -> BenchResult:
    service_mod = require("app.runtime.service", "RunService")
    db_mod = require("app.storage.db", "Database")
    repos = require("app.storage.repositories", "AccountRepo", "PipelineRepo", "RunRepo")
    from app.settings import Settings

    size = 200 if config.quick else 1_000
    result = BenchResult(KEY, TITLE, params={"items": size, "steps": 6, "repeats": config.repeats})
    items = make_items(size)
    inputs: dict[str, Any] = {"items": items, **SIX_STEPS_INPUTS}
    spec = load_spec(SIX_STEPS_YAML)
    plan = compile_plan(spec)
    expected = await six_steps_baseline(items, **SIX_STEPS_INPUTS)

    with tempfile.TemporaryDirectory(prefix="mashpipe-bench-") as folder:
        path = Path(folder) / "bench.db"
        settings = Settings(database_url=f"sqlite+aiosqlite:///{path}")
        db = db_mod.Database(settings.database_url)
        try:
            await db.upgrade()
            async with db.session() as session:
                account = await repos.AccountRepo(session).create(ACCOUNT)
                spec_json = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
                await repos.PipelineRepo(session).create(account.id, spec.name, SIX_STEPS_YAML, spec_json)
                await session.commit()
            service = service_mod.RunService(db, settings, NoConnectors())

            async def persisted() -> str:
                created = await service.create_run(
                    account_id=account.id, pipeline_name=spec.name, inputs=inputs
                )
                await service.execute(created.id)
                return str(created.id)

            await _check_persisted_run(db, repos, account.id, await persisted(), expected)

            async def engine_only() -> None:
                await run_plan(plan, inputs)

            cpu: dict[str, list[float]] = {}
            samples = await measure({"engine": engine_only, "persisted": persisted}, config.repeats, cpu=cpu)
            if config.profile:
                result.notes.append(await profile_async(persisted))
            size_bytes = _folder_size(Path(folder))
        finally:
            await db.dispose()

    result.samples = {**samples, **{f"{name}.cpu": values for name, values in cpu.items()}}
    engine_cpu, persisted_cpu = median(cpu["engine"]), median(cpu["persisted"])
    engine_s, persisted_s = median(samples["engine"]), median(samples["persisted"])
    result.lines = [
        Line("engine alone (null observer)", engine_s, "s"),
        Line("RunService: create_run + execute, SQLite", persisted_s, "s"),
        Line("persistence cost per run", persisted_s - engine_s, "s"),
        Line("ratio persisted / engine alone", persisted_s / engine_s, "x"),
        Line("CPU time: engine alone (all threads)", engine_cpu, "s"),
        Line("CPU time: persisted run (all threads)", persisted_cpu, "s"),
        Line("CPU ratio persisted / engine alone (less noisy)", persisted_cpu / engine_cpu, "x"),
    ]
    result.targets.append(
        Target("persisted run / engine alone", persisted_s / engine_s, "<", TARGET_RATIO, "x")
    )
    runs = 1 + 1 + config.repeats  # check, warm-up, timed
    result.notes.append(f"database after {runs} runs: {size_bytes / 1e6:.1f} MB (with WAL)")
    return result


def _folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir())


async def _check_persisted_run(db: Any, repos: Any, account_id: str, run_id: str, expected: Any) -> None:
    """The persisted run succeeded, has every step recorded, and the engine's outputs."""
    async with db.session() as session:
        runs = repos.RunRepo(session)
        stored = await runs.get(account_id, run_id)
        steps = await runs.steps(run_id)
    if stored is None or stored.status != "succeeded":
        error = None if stored is None else stored.error
        raise AssertionError(f"persisted run did not succeed: {error}")
    if stored.outputs != expected:
        raise AssertionError("persisted run outputs differ from the hand-written baseline's")
    statuses = {step.step_id: step.status for step in steps}
    if len(statuses) != 6 or set(statuses.values()) != {"succeeded"}:
        raise AssertionError(f"expected 6 succeeded steps persisted, got {statuses}")
