"""Inserting finished runs and their steps in batches: the SQL of the write-behind run recorder.

A run executed in memory (a published endpoint's) is recorded once it has finished: one row in ``runs``
and one per step in ``step_runs``, never updated afterwards. A run marked ``compact`` (a succeeded endpoint
run) keeps its steps' final states in its own row instead (``runs.step_states``, a JSON list of the
``step_runs`` columns, see :func:`compact_step_states` and
:func:`~app.storage.repositories.runs.read_step_states`): one row per run,
which costs this process measurably less than five (the endpoint benchmark's event loop spent ~100 us
less per answer). :class:`RunWrites` encodes each run once
(:meth:`RunWrites.encode`: every JSON document serialized once, the outputs and logs capped exactly as
:mod:`app.storage.repositories.runs` caps them) and inserts many runs in one transaction
(:meth:`RunWrites.insert`).

Two ways to write, giving the same rows:

* on SQLite (aiosqlite), the rows are the values SQLAlchemy's column types would bind (JSON text made by
  :func:`~app.storage.types.dumps_json`, timestamps as the UTC text of SQLite's ``DATETIME``, booleans
  as integers), inserted by multi-row ``INSERT`` statements (:data:`ROWS_PER_STATEMENT` rows each) on the
  pooled driver connection, run in the connection's thread in one hop with the commit (no per-row bind
  processing by SQLAlchemy);
* elsewhere (PostgreSQL), one Core ``INSERT`` per table executed for many rows, in a session.

The fast path is used only while the tables are the ones it was written for and the dialect's own bind
processors give, for a sample, exactly the values it makes (checked once per :class:`RunWrites`);
otherwise the Core path is used.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import Boolean, Integer, String, Table, Text, insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import JSON

from app.engine.types import StepResult, StepStatus
from app.storage.db import Database
from app.storage.models import Run, StepRun
from app.storage.repositories.runs import PREVIEW_MAX_CHARS, STEP_VALUE_COLUMNS, cap_logs
from app.storage.types import EncodedJSON, UTCDateTime, dumps_json, dumps_json_bytes, sqlite_utc_text

RUN_COLUMNS = (
    "id",
    "account_id",
    "pipeline_id",
    "pipeline_name",
    "revision",
    "status",
    "trigger_kind",
    "trigger",
    "inputs",
    "outputs",
    "error",
    "created_at",
    "started_at",
    "finished_at",
    "attempt",
    "step_states",
)
"""The columns of ``runs`` written for a finished run (the others stay NULL), in the order of its row."""

STEP_COLUMNS = ("id", "run_id", "step_id", *STEP_VALUE_COLUMNS)
"""The columns of ``step_runs`` written for a step, in the order of its row."""

_RUNS = cast(Table, Run.__table__)
_STEPS = cast(Table, StepRun.__table__)
_INSERT_RUNS = insert(_RUNS)  # the Core path's statements, prepared once
_INSERT_STEPS = insert(_STEPS)


def _insert_sql(table: Table, columns: Sequence[str]) -> str:
    names = ", ".join(f'"{name}"' for name in columns)
    marks = ", ".join("?" for _ in columns)
    return f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})'


SQLITE_INSERT_RUNS = _insert_sql(_RUNS, RUN_COLUMNS)
SQLITE_INSERT_STEPS = _insert_sql(_STEPS, STEP_COLUMNS)

ROWS_PER_STATEMENT = 32
"""Rows inserted by one multi-row ``INSERT ... VALUES (...), (...)`` on the SQLite path (SQLite's limit on
bound values is 999 before 3.32 and 32,766 since: 32 rows of 16 columns, 512 values, stay below both)."""


@functools.cache
def _multi_row_sql(single: str, rows: int) -> str:
    """``single`` (an ``INSERT ... VALUES (?, ...)``) for ``rows`` rows in one statement."""
    head, separator, marks = single.partition(" VALUES ")
    return head + separator + ", ".join([marks] * rows)


def _insert_rows(connection: sqlite3.Connection, single: str, rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` with multi-row statements: one ``sqlite3_step`` per :data:`ROWS_PER_STATEMENT` rows
    where ``executemany`` steps once per row. Each step releases the GIL and takes it back; under load
    the event loop holds it, so each of those hand-overs costs the loop's thread a futex wake-up and
    a context switch (measured with perf: ~3% of the server's samples at 50 connections)."""
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        values = [value for row in chunk for value in row]
        connection.execute(_multi_row_sql(single, len(chunk)), values)


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """A run executed in memory, to record: its row's values and its steps' final states."""

    id: str
    account_id: str
    pipeline_id: str
    pipeline_name: str
    revision: int
    status: str
    trigger: dict[str, Any]
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime
    finished_at: datetime
    steps: Sequence[StepResult]
    step_output_max_bytes: int | None = None
    """A lower cap than the recorder's for this run's step outputs (None: the recorder's cap)."""
    compact: bool = False
    """Record the steps' final states in the run's row (``runs.step_states``), not as ``step_runs`` rows:
    for runs that are never resumed nor retried from their steps (succeeded ones)."""


def _step_cap(run: FinishedRun, default: int) -> int:
    cap = run.step_output_max_bytes
    return default if cap is None else min(cap, default)


@dataclass(frozen=True, slots=True)
class EncodedRun:
    """The rows of one finished run, encoded once (written again as they are when its batch fails).

    On the SQLite path the rows are tuples in the order of :data:`RUN_COLUMNS` / :data:`STEP_COLUMNS`;
    on the Core path they are dictionaries keyed by those columns."""

    id: str
    run: Any
    steps: list[Any]


def database_locked(error: BaseException) -> bool:
    """True for SQLite's "database is locked" (from SQLAlchemy or the driver): worth writing again later."""
    return isinstance(error, OperationalError | sqlite3.OperationalError) and "database is locked" in str(
        error
    )


def _uuid4_hex() -> str:
    """A new primary key like :func:`~app.storage.base.new_id` (a random UUID4 in 32 hex characters)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def _last_states(steps: Sequence[StepResult]) -> list[StepResult]:
    """One state per step (the last one given)."""
    if len(steps) <= 1:
        return list(steps)
    return list({step.step_id: step for step in steps}.values())


def _output_text(output: Any, max_output_bytes: int) -> tuple[str | None, bool]:
    """The stored JSON text of a step output and whether it was truncated, as
    :func:`~app.storage.repositories.runs.cap_output` caps it (the text measured is the text stored)."""
    if output is None:
        return None, False
    encoded = dumps_json_bytes(output)
    if len(encoded) <= max_output_bytes:
        return encoded.decode("utf-8"), False
    keep = max(0, min(PREVIEW_MAX_CHARS, max_output_bytes))
    preview = encoded[: keep * 4].decode("utf-8", errors="ignore")[:keep]
    return dumps_json({"truncated": True, "size": len(encoded), "preview": preview}), True


def _logs_text(logs: list[str], max_bytes: int) -> str:
    """The JSON text of the logs as :func:`~app.storage.repositories.runs.cap_logs` keeps them; without
    encoding them to measure them when they surely fit (a character is at most 4 bytes of UTF-8)."""
    if not logs:
        return "[]"
    if all(type(line) is str for line in logs) and sum(map(len, logs)) * 4 <= max_bytes:
        return dumps_json(logs)
    return dumps_json(cap_logs(list(logs), max_bytes))


def _json_text(value: Any) -> str | None:
    return None if value is None else dumps_json(value)


def _status(status: Any) -> str:
    return status.value if type(status) is StepStatus else StepStatus(status).value


def _aware(value: datetime | None) -> datetime | None:
    """A timestamp as the Core path binds it (refusing naive ones, as :class:`UTCDateTime` does)."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(
            f"naive datetime {value.isoformat()} refused: pass an aware datetime, e.g. datetime.now(UTC)"
        )
    return value


def _utc(value: datetime | None) -> datetime | None:
    """A step's timestamp for ``runs.step_states``, in UTC (naive ones refused): orjson writes it as
    ``isoformat()`` does (``2026-11-26T09:30:00.123456+00:00``), at a tenth of the cost."""
    if value is None or (type(value) is datetime and value.tzinfo is UTC):
        return value
    return cast(datetime, _aware(value)).astimezone(UTC)


def compact_step_states(run: FinishedRun, max_output_bytes: int) -> str:
    """The JSON text of ``runs.step_states`` for ``run``: one object per step (its last state) with the
    values of the ``step_runs`` columns, outputs and logs capped as they are there."""
    states = []
    for step in _last_states(run.steps):
        output, truncated = _output_text(step.output, max_output_bytes)
        error = step.error
        states.append(
            {
                "step_id": step.step_id,
                "status": _status(step.status),
                "attempts": step.attempts,
                "started_at": _utc(step.started_at),
                "finished_at": _utc(step.finished_at),
                "duration_ms": step.duration_ms,
                "output": None if output is None else orjson.Fragment(output),
                "output_truncated": truncated,
                "error": None if error is None else orjson.Fragment(dumps_json(error.to_dict())),
                "logs": orjson.Fragment(_logs_text(step.logs, max_output_bytes)),
            }
        )
    return orjson.dumps(states).decode("utf-8")


class RunWrites:
    """Encodes finished runs and inserts them in batches (see the module). Stateless between batches."""

    def __init__(self, db: Database, *, max_output_bytes: int) -> None:
        self._db = db
        self._max_output_bytes = max_output_bytes
        self.fast = db.backend == "sqlite" and sqlite_rows_match(db)
        """Whether the SQLite fast path is used (False: the Core path)."""

    def encode(self, run: FinishedRun) -> EncodedRun:
        """The rows of ``run`` and of its steps' last states. Raises ``ValueError`` for a naive timestamp."""
        if self.fast:
            return self._encode_sqlite(run)
        return self._encode_core(run)

    async def insert(self, runs: Sequence[EncodedRun]) -> None:
        """Insert the runs and their steps in ONE transaction (nothing written when it raises)."""
        async with self.writer() as writer:
            await writer.insert(runs)

    def writer(self) -> BatchWriter:
        """A writer of several batches in a row (``async with``): on SQLite it keeps one pooled connection
        from its first batch to the end of the block (or to a failed batch), instead of taking one from
        the pool (and resetting it) for every batch."""
        return BatchWriter(self)

    # -- SQLite: driver values, multi-row INSERTs in the connection's thread ---------------------------

    def _encode_sqlite(self, run: FinishedRun) -> EncodedRun:
        max_bytes = _step_cap(run, self._max_output_bytes)
        steps = []
        for step in () if run.compact else _last_states(run.steps):
            output, truncated = _output_text(step.output, max_bytes)
            error = step.error
            started_at, finished_at = step.started_at, step.finished_at
            steps.append(
                (
                    _uuid4_hex(),
                    run.id,
                    step.step_id,
                    _status(step.status),
                    step.attempts,
                    None if started_at is None else sqlite_utc_text(started_at),
                    None if finished_at is None else sqlite_utc_text(finished_at),
                    step.duration_ms,
                    output,
                    1 if truncated else 0,
                    None if error is None else dumps_json(error.to_dict()),
                    _logs_text(step.logs, max_bytes),
                )
            )
        row = (
            run.id,
            run.account_id,
            run.pipeline_id,
            run.pipeline_name,
            run.revision,
            run.status,
            str(run.trigger.get("kind", "endpoint"))[:32],
            dumps_json(run.trigger),
            dumps_json(run.inputs),
            _json_text(run.outputs),
            _json_text(run.error),
            sqlite_utc_text(run.created_at),
            sqlite_utc_text(run.started_at),
            sqlite_utc_text(run.finished_at),
            1,
            compact_step_states(run, max_bytes) if run.compact else None,
        )
        return EncodedRun(run.id, row, steps)

    # -- other databases: Core INSERTs with SQLAlchemy's bind processing ------------------------------

    def _encode_core(self, run: FinishedRun) -> EncodedRun:
        max_bytes = _step_cap(run, self._max_output_bytes)
        steps = []
        for step in () if run.compact else _last_states(run.steps):
            output, truncated = _output_text(step.output, max_bytes)
            error = step.error
            steps.append(
                {
                    "id": _uuid4_hex(),
                    "run_id": run.id,
                    "step_id": step.step_id,
                    "status": _status(step.status),
                    "attempts": step.attempts,
                    "started_at": _aware(step.started_at),
                    "finished_at": _aware(step.finished_at),
                    "duration_ms": step.duration_ms,
                    "output": None if output is None else EncodedJSON(output),
                    "output_truncated": truncated,
                    "error": None if error is None else EncodedJSON(dumps_json(error.to_dict())),
                    "logs": EncodedJSON(_logs_text(step.logs, max_bytes)),
                }
            )
        row = {
            "id": run.id,
            "account_id": run.account_id,
            "pipeline_id": run.pipeline_id,
            "pipeline_name": run.pipeline_name,
            "revision": run.revision,
            "status": run.status,
            "trigger_kind": str(run.trigger.get("kind", "endpoint"))[:32],
            "trigger": EncodedJSON(dumps_json(run.trigger)),
            "inputs": EncodedJSON(dumps_json(run.inputs)),
            "outputs": None if run.outputs is None else EncodedJSON(dumps_json(run.outputs)),
            "error": None if run.error is None else EncodedJSON(dumps_json(run.error)),
            "created_at": _aware(run.created_at),
            "started_at": _aware(run.started_at),
            "finished_at": _aware(run.finished_at),
            "attempt": 1,
            "step_states": EncodedJSON(compact_step_states(run, max_bytes)) if run.compact else None,
        }
        return EncodedRun(run.id, row, steps)


class BatchWriter:
    """Writes batches of encoded runs, one transaction each (see :meth:`RunWrites.writer`)."""

    def __init__(self, writes: RunWrites) -> None:
        self._db = writes._db
        self._fast = writes.fast
        self._connection: AsyncConnection | None = None
        self._driver: Any = None  # the aiosqlite.Connection of the pooled connection held

    async def __aenter__(self) -> BatchWriter:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.release()

    async def insert(self, runs: Sequence[EncodedRun]) -> None:
        """Insert the runs and their steps in ONE transaction (nothing written when it raises)."""
        if not runs:
            return
        run_rows = [run.run for run in runs]
        step_rows = [row for run in runs for row in run.steps]
        if not self._fast:
            await self._insert_core(run_rows, step_rows)
            return
        try:
            await self._insert_sqlite(run_rows, step_rows)
        except BaseException:
            await self.release()  # the next batch takes a fresh connection
            raise

    async def release(self) -> None:
        """Give the connection back to the pool (if one is held)."""
        connection, self._connection, self._driver = self._connection, None, None
        if connection is not None:
            await connection.close()

    async def _insert_sqlite(self, run_rows: list[Any], step_rows: list[Any]) -> None:
        if self._connection is None:
            self._connection = await self._db.engine.connect()
            raw = await self._connection.get_raw_connection()
            self._driver = raw.driver_connection  # an aiosqlite.Connection
        driver = self._driver
        in_thread = thread_call(driver)
        if in_thread is not None:
            await in_thread(run_rows, step_rows)  # one thread hop
            return
        # aiosqlite without those internals: its public API (one thread hop per statement).
        try:
            if driver.isolation_level is None:  # autocommit mode: open the transaction ourselves
                await driver.execute("BEGIN")
            await driver.executemany(SQLITE_INSERT_RUNS, run_rows)
            if step_rows:
                await driver.executemany(SQLITE_INSERT_STEPS, step_rows)
            await driver.commit()
        except BaseException:
            await driver.rollback()
            raise

    async def _insert_core(self, run_rows: list[Any], step_rows: list[Any]) -> None:
        async with self._db.session() as session:
            await session.execute(_INSERT_RUNS, run_rows)
            if step_rows:
                await session.execute(_INSERT_STEPS, step_rows)
            await session.commit()


def thread_call(driver: Any) -> Callable[[list[Any], list[Any]], Awaitable[None]] | None:
    """How to run :func:`_insert_batch` in the thread of an aiosqlite connection, in one hop (through the
    aiosqlite internals SQLAlchemy's dialect uses too); None when they are not there."""
    queue_call = getattr(driver, "_execute", None)  # runs a function in the connection's thread
    try:
        sync = driver._conn  # the sqlite3 connection
    except (AttributeError, ValueError):
        return None
    if not callable(queue_call) or not isinstance(sync, sqlite3.Connection):
        return None

    async def call(run_rows: list[Any], step_rows: list[Any]) -> None:
        await queue_call(_insert_batch, sync, run_rows, step_rows)

    return call


def _insert_batch(connection: sqlite3.Connection, run_rows: list[Any], step_rows: list[Any]) -> None:
    """In the connection's thread: both inserts and the commit, rolled back on any error."""
    try:
        if connection.isolation_level is None:  # autocommit mode: open the transaction ourselves
            connection.execute("BEGIN")
        _insert_rows(connection, SQLITE_INSERT_RUNS, run_rows)
        if step_rows:
            _insert_rows(connection, SQLITE_INSERT_STEPS, step_rows)
        connection.commit()
    except BaseException:
        if connection.in_transaction:
            connection.rollback()
        raise


def _column_kind(column: Any) -> str | None:
    """What the fast path binds for a column type: ``json``, ``time``, ``bool``, ``plain``, or None
    (a type it does not know)."""
    column_type = column.type
    if isinstance(column_type, UTCDateTime):
        return "time"
    if isinstance(column_type, JSON):
        return "json"
    if isinstance(column_type, Boolean):
        return "bool"
    if type(column_type) in (String, Integer, Text):
        return "plain"
    return None


_EXPECTED_KINDS = {
    "runs": {
        "id": "plain",
        "account_id": "plain",
        "pipeline_id": "plain",
        "pipeline_name": "plain",
        "revision": "plain",
        "status": "plain",
        "trigger_kind": "plain",
        "trigger": "json",
        "inputs": "json",
        "outputs": "json",
        "error": "json",
        "created_at": "time",
        "started_at": "time",
        "finished_at": "time",
        "attempt": "plain",
        "step_states": "json",
    },
    "step_runs": {
        "id": "plain",
        "run_id": "plain",
        "step_id": "plain",
        "status": "plain",
        "attempts": "plain",
        "started_at": "time",
        "finished_at": "time",
        "duration_ms": "plain",
        "output": "json",
        "output_truncated": "bool",
        "error": "json",
        "logs": "json",
    },
}


def _table_matches(table: Table) -> bool:
    """The table has the written columns with the expected types, and every other column may be left
    out of the INSERT (nullable, no default)."""
    expected = _EXPECTED_KINDS[table.name]
    for column in table.columns:
        kind = expected.get(column.name)
        if kind is None:
            if not column.nullable or column.default is not None or column.server_default is not None:
                return False
        elif _column_kind(column) != kind:
            return False
    return set(expected) <= set(table.columns.keys())


_SAMPLE_TIMES = (
    datetime(2024, 2, 29, 23, 59, 58, 7, tzinfo=UTC),
    datetime(2024, 3, 1, 0, 0, tzinfo=UTC),  # no microseconds: still written with ".000000"
)
_SAMPLE_JSON: Any = {"a": [1, 2.5, "é", None, True], "b": {"c": "\u2028"}}


def sqlite_rows_match(db: Database) -> bool:
    """Whether the fast path's values are exactly what the dialect's own bind processors give, for the
    tables as they are (checked with samples; False sends every write to the Core path)."""
    if not (_table_matches(_RUNS) and _table_matches(_STEPS)):
        return False
    dialect = db.engine.dialect

    def bound(column: Any, value: Any) -> Any:
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        return value if process is None else process(value)

    times_match = all(bound(_RUNS.c.created_at, t) == sqlite_utc_text(t) for t in _SAMPLE_TIMES)
    bound_json = bound(_STEPS.c.output, _SAMPLE_JSON)
    bound_null = bound(_STEPS.c.output, None)
    bound_true = bound(_STEPS.c.output_truncated, True)
    return times_match and bound_json == dumps_json(_SAMPLE_JSON) and bound_null is None and bound_true == 1


__all__ = [
    "RUN_COLUMNS",
    "STEP_COLUMNS",
    "BatchWriter",
    "EncodedRun",
    "FinishedRun",
    "RunWrites",
    "database_locked",
    "sqlite_rows_match",
]
