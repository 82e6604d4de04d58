"""Benchmark: recording finished endpoint runs write-behind, CPU per run, vs hand-written sqlite3.

Runs shaped like the published-endpoint benchmark's (inputs ``{min_score}``, trigger ``{kind, query}``,
4 steps whose outputs are the upstream's 50 items, the kept ones, the reshaped ones and the top 10;
outputs ``{top}``) are handed to :class:`~app.runtime.run_recorder.RunRecorder` one every
``INTERVAL_S`` (as sequential requests would), on a real SQLite file. The hand-written baseline does
the same with plain ``sqlite3``: the same rows (orjson, the same timestamp text), group-committed every
5 ms by one ``executemany`` per table in a worker thread. Each variant's CPU (every thread of the
process) is measured with the pacing loop alone subtracted (the ``idle`` variant: same sleeps, nothing
recorded). Target: the recorder within 1.25x of the hand-written CPU per run.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.endpoint_workload import make_upstream_items, top_items
from bench.harness import BenchConfig, BenchResult, Line, Target, measure, median, require

KEY = "recorder"
TITLE = "Run recorder: CPU per recorded endpoint run vs hand-written sqlite3 executemany"
TARGET_RATIO = 1.25
INTERVAL_S = 0.002  # one run handed over every 2 ms: ~2-3 runs per 5 ms batch
_COLUMNS_RUNS = (
    "id, account_id, pipeline_id, pipeline_name, revision, status, trigger_kind, trigger, inputs, "
    "outputs, error, created_at, started_at, finished_at, attempt"
)
_COLUMNS_STEPS = (
    "id, run_id, step_id, status, attempts, started_at, finished_at, duration_ms, output, "
    "output_truncated, error, logs"
)

_INSERT_RUNS = f"INSERT INTO runs ({_COLUMNS_RUNS}) VALUES ({', '.join('?' * 15)})"
_INSERT_STEPS = f"INSERT INTO step_runs ({_COLUMNS_STEPS}) VALUES ({', '.join('?' * 12)})"


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def make_runs(account_id: str, pipeline_id: str, count: int) -> list[Any]:
    """``count`` finished runs like the endpoint benchmark's (new ids and times)."""
    from app.engine.types import StepResult as step_result
    from app.engine.types import StepStatus
    from app.runtime.run_recorder import FinishedRun as finished_run

    items = make_upstream_items()
    kept = [item for item in items if item["score"] >= 20 and item["kind"] != "spam"]
    top = top_items(items)["top"]
    shaped = [{**item, "title": item["title"].upper()} for item in kept]
    runs = []
    for _ in range(count):
        now = datetime.now(UTC)
        outputs = (("fetch", items), ("kept", kept), ("shaped", shaped), ("ranked", top))
        steps = [
            step_result(
                step_id=name,
                status=StepStatus.SUCCEEDED,
                attempts=1,
                started_at=now + timedelta(microseconds=100 * index),
                finished_at=now + timedelta(microseconds=100 * index + 60),
                output=output,
            )
            for index, (name, output) in enumerate(outputs)
        ]
        runs.append(
            finished_run(
                id=uuid.uuid4().hex,
                account_id=account_id,
                pipeline_id=pipeline_id,
                pipeline_name="bench-top-items",
                revision=1,
                status="succeeded",
                trigger={"kind": "endpoint", "query": {"min_score": "20"}},
                inputs={"min_score": 20},
                outputs={"top": top},
                error=None,
                created_at=now,
                started_at=now,
                finished_at=now + timedelta(microseconds=900),
                steps=steps,
            )
        )
    return runs


class HandWritten:
    """The baseline: runs buffered, written every 5 ms by plain sqlite3 in one worker thread."""

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(path, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=5000", "synchronous=NORMAL"):
            self._connection.execute(f"PRAGMA {pragma}")
        self._thread = ThreadPoolExecutor(1)
        self._pending: list[Any] = []
        self._task: asyncio.Task[None] | None = None

    async def add(self, run: Any) -> None:
        self._pending.append(run)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write())

    async def flush(self) -> None:
        if self._task is not None:
            await self._task

    def close(self) -> None:
        self._thread.shutdown()
        self._connection.close()

    async def _write(self) -> None:
        await asyncio.sleep(0.005)
        while self._pending:
            batch, self._pending = self._pending, []
            runs, steps = [], []
            for run in batch:
                json = [orjson.dumps(value).decode() for value in (run.trigger, run.inputs, run.outputs)]
                times = [_text(value) for value in (run.created_at, run.started_at, run.finished_at)]
                head = (run.id, run.account_id, run.pipeline_id, run.pipeline_name, run.revision, run.status)
                runs.append((*head, run.trigger["kind"], *json, None, *times, 1))
                for step in run.steps:
                    output = orjson.dumps(step.output).decode()
                    started, finished = _text(step.started_at), _text(step.finished_at)
                    key = (uuid.uuid4().hex, run.id, step.step_id, "succeeded", step.attempts)
                    steps.append((*key, started, finished, step.duration_ms, output, 0, None, "[]"))
            await asyncio.get_running_loop().run_in_executor(self._thread, self._insert, runs, steps)

    def _insert(self, runs: list[Any], steps: list[Any]) -> None:
        with self._connection:
            self._connection.executemany(_INSERT_RUNS, runs)
            self._connection.executemany(_INSERT_STEPS, steps)


async def run(config: BenchConfig) -> BenchResult:
    recorder_mod = require("app.runtime.run_recorder", "RunRecorder", "FinishedRun")
    db_mod = require("app.storage.db", "Database")
    repos = require("app.storage.repositories", "AccountRepo", "PipelineRepo")
    require("app.engine.types", "StepResult")
    count = 200 if config.quick else 2_000
    result = BenchResult(
        KEY, TITLE, params={"runs": count, "interval_s": INTERVAL_S, "repeats": config.repeats}
    )
    with tempfile.TemporaryDirectory(prefix="mashpipe-bench-") as folder:
        path = Path(folder) / "recorder.db"
        db = db_mod.Database(f"sqlite+aiosqlite:///{path}")
        await db.upgrade()
        async with db.session() as session:
            account = await repos.AccountRepo(session).create("bench")
            pipeline, _ = await repos.PipelineRepo(session).create(
                account.id, "bench-top-items", "# bench", {}
            )
            await session.commit()
            account_id, pipeline_id = account.id, pipeline.id
        recorder = recorder_mod.RunRecorder(db, max_output_bytes=262_144)
        baseline = HandWritten(path)

        async def paced(sink: Any) -> None:
            runs = make_runs(account_id, pipeline_id, count)
            for one in runs:
                if sink is not None:
                    await sink.add(one)
                await asyncio.sleep(INTERVAL_S)
            if sink is not None:
                await sink.flush()

        try:
            cpu: dict[str, list[float]] = {}
            samples = await measure(
                {
                    "idle": lambda: paced(None),
                    "recorder": lambda: paced(recorder),
                    "hand-written": lambda: paced(baseline),
                },
                config.repeats,
                cpu=cpu,
            )
            await recorder.close()
            if recorder.lost:
                raise AssertionError(f"the recorder lost {recorder.lost} runs")
            written = sqlite3.connect(path).execute("SELECT count(*) FROM runs").fetchone()[0]
            expected = 2 * count * (config.repeats + 1)
            if written != expected:
                raise AssertionError(f"{written} runs in the database, {expected} expected")
        finally:
            baseline.close()
            await db.dispose()
    result.samples = {**samples, **{f"{name}.cpu": values for name, values in cpu.items()}}
    paired = {
        name: median([(v - idle) / count for v, idle in zip(cpu[name], cpu["idle"], strict=True)])
        for name in ("recorder", "hand-written")
    }
    ratio = paired["recorder"] / paired["hand-written"]
    result.lines = [
        Line("RunRecorder: CPU per run (pacing subtracted)", paired["recorder"], "s"),
        Line("hand-written sqlite3 executemany: CPU per run", paired["hand-written"], "s"),
        Line("ratio recorder / hand-written", ratio, "x"),
        Line("recorder batches (transactions)", recorder.batches, "count"),
    ]
    result.targets.append(Target("recorder CPU / hand-written", ratio, "<=", TARGET_RATIO, "x"))
    return result
