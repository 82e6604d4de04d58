"""Runs and their step runs."""

from __future__ import annotations

import builtins
import functools
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    bindparam,
    func,
    insert,
    literal,
    literal_column,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer, make_transient_to_detached

from app.engine.types import RunStatus, StepError, StepResult, StepStatus
from app.errors import BadRequest, MashpipeError, NotFound
from app.storage.base import new_id, utcnow
from app.storage.models import Pipeline, PipelineRevision, Run, StepRun
from app.storage.repositories.cursor import check_limit, decode_time_id, encode_time_id
from app.storage.types import EncodedJSON, UTCDateTime, dumps_json, dumps_json_bytes

MAX_PAGE = 1000
PREVIEW_MAX_CHARS = 1024
"""A truncated step output keeps at most this many characters of its JSON as a preview."""

_UNFINISHED = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)

STEP_VALUE_COLUMNS = (
    "status",
    "attempts",
    "started_at",
    "finished_at",
    "duration_ms",
    "output",
    "output_truncated",
    "error",
    "logs",
)
"""The columns of a step row that :func:`_step_values` gives (and a newer state of the step replaces)."""
_UPSERT_STEPS: dict[str, Any] = {}  # dialect name -> the upsert statement of RunRepo.upsert_steps
_INSERT_RUN = insert(cast(Table, Run.__table__))  # RunRepo.create's INSERT, built once
_RUN_COLUMNS = frozenset(attribute.key for attribute in Run.__mapper__.column_attrs)
_STORED_JSON: weakref.WeakKeyDictionary[Run, tuple[str, str]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of :meth:`RunRepo.list`: the runs, how many match, and the cursor of the next page."""

    runs: builtins.list[Run]
    total: int
    """How many runs match the filters across all pages; a lower bound when not ``total_exact``."""
    next_cursor: str | None
    """Cursor of the next page; None on the last."""
    total_exact: bool = True
    """False when more runs match than the count cap: at least ``total`` runs match."""


def stored_json(run: Run) -> tuple[str, str] | None:
    """The JSON text of the inputs and trigger of a run created by :meth:`RunRepo.create` in this
    process, as written to its row (None for a run read from the database)."""
    return _STORED_JSON.get(run)


def _run_status(status: RunStatus | str) -> str:
    try:
        return RunStatus(status).value
    except ValueError:
        allowed = [item.value for item in RunStatus]
        raise BadRequest(
            f"unknown run status {status!r}", details={"status": status, "allowed": allowed}
        ) from None


def _error_dict(error: StepError | dict[str, Any] | None) -> dict[str, Any] | None:
    if error is None or isinstance(error, dict):
        return error
    return error.to_dict()


def cap_output(output: Any, max_output_bytes: int) -> tuple[Any, bool]:
    """``(stored output, truncated)``: the output itself when its JSON fits in ``max_output_bytes``,
    else ``{"truncated": True, "size": N, "preview": "<first characters of the JSON>"}``."""
    stored, truncated = _capped_output(output, max_output_bytes)
    return (output if type(stored) is EncodedJSON else stored), truncated


def _capped_output(output: Any, max_output_bytes: int) -> tuple[Any, bool]:
    """:func:`cap_output`, with an output that fits given as its :class:`EncodedJSON` text (the JSON
    encoded to measure it is the JSON stored: encoded once)."""
    if output is None:
        return None, False
    encoded = dumps_json_bytes(output)
    if len(encoded) <= max_output_bytes:
        return EncodedJSON(encoded.decode("utf-8")), False
    keep = max(0, min(PREVIEW_MAX_CHARS, max_output_bytes))
    preview = encoded[: keep * 4].decode("utf-8", errors="ignore")[:keep]
    return {"truncated": True, "size": len(encoded), "preview": preview}, True


def cap_logs(logs: list[str], max_bytes: int) -> list[str]:
    """The first log lines that fit in ``max_bytes`` (UTF-8), plus a line telling how many were dropped."""
    kept: list[str] = []
    used = 0
    for index, line in enumerate(logs):
        text = line if isinstance(line, str) else str(line)
        size = len(text.encode("utf-8", errors="replace"))
        if used + size > max_bytes:
            kept.append(f"... {len(logs) - index} more log lines dropped (over {max_bytes} bytes)")
            break
        kept.append(text)
        used += size
    return kept


_SUMMARY_ONLY = (
    defer(Run.inputs, raiseload=True),
    defer(Run.outputs, raiseload=True),
    defer(Run.trigger, raiseload=True),
    defer(Run.step_states, raiseload=True),
)
"""A listed run's large JSON columns, not loaded: a list shows summaries (``error`` stays, it is shown)."""


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def read_step_states(run_id: str, states: Iterable[dict[str, Any]]) -> list[StepRun]:
    """``runs.step_states`` as (transient) ``StepRun`` rows, in the order the steps started (not
    started ones last, by id), like :meth:`~app.storage.repositories.runs.RunRepo.steps`."""
    rows = [
        StepRun(
            id=f"{run_id}.{index}",
            run_id=run_id,
            step_id=str(state["step_id"]),
            status=str(state["status"]),
            attempts=int(state.get("attempts") or 0),
            started_at=_time(state.get("started_at")),
            finished_at=_time(state.get("finished_at")),
            duration_ms=state.get("duration_ms"),
            output=state.get("output"),
            output_truncated=bool(state.get("output_truncated")),
            error=state.get("error"),
            logs=list(state.get("logs") or []),
        )
        for index, state in enumerate(states)
    ]
    first = datetime.min.replace(tzinfo=UTC)
    rows.sort(key=lambda row: (row.started_at is None, row.started_at or first, row.step_id))
    return rows


class RunRepo:
    """Runs of an account and the state of their steps. Never commits: the caller does."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self,
        *,
        account_id: str,
        pipeline: Pipeline,
        revision: PipelineRevision | int,
        inputs: dict[str, Any],
        trigger: dict[str, Any],
        status: RunStatus | str = RunStatus.QUEUED,
        attempt: int = 1,
        retry_of: str | None = None,
    ) -> Run:
        """Record a new run of ``pipeline`` at ``revision`` (a revision or its number); a retry gives
        the run it retries (``retry_of``) and its ``attempt`` number."""
        if pipeline.account_id != account_id:
            raise NotFound(f"pipeline {pipeline.name!r} not found")
        if isinstance(revision, PipelineRevision):
            if revision.pipeline_id != pipeline.id:
                raise BadRequest(f"revision {revision.number} is not a revision of {pipeline.name!r}")
            number = revision.number
        else:
            number = revision
        if not 1 <= number <= pipeline.latest_revision:
            raise NotFound(f"pipeline {pipeline.name!r} has no revision {number}")
        values: dict[str, Any] = {
            "id": new_id(),
            "account_id": account_id,
            "pipeline_id": pipeline.id,
            "pipeline_name": pipeline.name,
            "revision": number,
            "status": _run_status(status),
            "trigger_kind": str(trigger.get("kind", "manual"))[:32],
            "trigger": trigger,
            "inputs": inputs,
            "outputs": None,
            "error": None,
            "created_at": utcnow(),
            "started_at": None,
            "finished_at": None,
            "attempt": attempt,
            "retry_of": retry_of,
            "heartbeat_at": None,
            "step_states": None,
        }
        if _RUN_COLUMNS.difference(values):  # a column this code does not know: let the ORM insert it
            run = Run(**{name: value for name, value in values.items() if value is not None})
            self.session.add(run)
            await self.session.flush()
            return run
        # One prepared Core INSERT (the JSON encoded once, kept for stored_json), then the object made
        # persistent in the session as written, as a flush would have left it.
        texts = (dumps_json(inputs), dumps_json(trigger))
        await self.session.execute(
            _INSERT_RUN, {**values, "inputs": EncodedJSON(texts[0]), "trigger": EncodedJSON(texts[1])}
        )
        run = Run(**values)
        make_transient_to_detached(run)
        self.session.add(run)
        _STORED_JSON[run] = texts
        return run

    async def get(self, account_id: str, run_id: str) -> Run | None:
        """The account's run (None for another account's)."""
        return await self.session.scalar(select(Run).where(Run.id == run_id, Run.account_id == account_id))

    async def get_any(self, run_id: str) -> Run | None:
        """A run whatever its account (for the worker)."""
        return await self.session.get(Run, run_id)

    async def steps_of(self, run: Run) -> builtins.list[StepRun]:
        """The run's steps in the order they started: its ``step_runs`` rows, or, for a run recorded in
        one piece (``step_states``), those states as transient rows."""
        if run.step_states is not None:
            return read_step_states(run.id, run.step_states)
        return await self.steps(run.id)

    async def steps(self, run_id: str) -> builtins.list[StepRun]:
        """The run's steps in the order they started (not started ones last, by id)."""
        statement = (
            select(StepRun)
            .where(StepRun.run_id == run_id)
            .order_by(StepRun.started_at.is_(None), StepRun.started_at, StepRun.step_id)
        )
        return list(await self.session.scalars(statement))

    async def list(
        self,
        account_id: str,
        *,
        pipeline_name: str | None = None,
        status: RunStatus | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        count_max: int | None = None,
    ) -> RunPage:
        """A page of the account's runs, newest first, with ``total`` and ``next_cursor``.

        The runs are summaries: their ``inputs``, ``outputs`` and ``trigger`` are not loaded (reading
        one raises); :meth:`get` gives a whole run.

        ``total`` counts the runs matching the filters (not only this page). Pagination is by
        keyset on ``(created_at, id)``: the cursor is opaque and stable while runs are added.
        With ``count_max`` (>= 1) at most ``count_max + 1`` matching rows are counted (an index range
        that stops early): when more than ``count_max`` match, ``total`` is ``count_max`` and
        ``total_exact`` is False (at least that many match). ``None`` counts every match. A first
        page that holds every match is not counted at all: its ``total`` is exact whatever the cap.
        """
        check_limit(limit, MAX_PAGE)
        if count_max is not None and count_max < 1:
            raise BadRequest(f"count_max must be at least 1 (or None for an exact count), not {count_max}")
        conditions: builtins.list[ColumnElement[bool]] = [Run.account_id == account_id]
        if status is not None:
            conditions.append(Run.status == _run_status(status))
        if pipeline_name is not None:
            pipeline_id = await self.session.scalar(
                select(Pipeline.id).where(Pipeline.account_id == account_id, Pipeline.name == pipeline_name)
            )
            if pipeline_id is None:
                if cursor is not None:
                    decode_time_id(cursor)
                return RunPage([], 0, None)
            conditions.append(Run.pipeline_id == pipeline_id)
        filters = list(conditions)
        if cursor is not None:
            created_at, run_id = decode_time_id(cursor)
            # A row-value comparison: both SQLite and PostgreSQL turn it into an index range.
            position = tuple_(literal(created_at, UTCDateTime()), literal(run_id, Run.id.type))
            conditions.append(tuple_(Run.created_at, Run.id) < position)
        statement = (
            select(Run)
            .options(*_SUMMARY_ONLY)
            .where(*conditions)
            .order_by(Run.created_at.desc(), Run.id.desc())
            .limit(limit + 1)
        )
        rows = list(await self.session.scalars(statement))
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_time_id(last.created_at, last.id)
        if cursor is None and len(rows) <= limit:
            # The whole result fits in this page: no need to count.
            return RunPage(rows, len(rows), next_cursor)
        if count_max is None:
            total = await self.session.scalar(select(func.count()).select_from(Run).where(*filters)) or 0
            return RunPage(rows[:limit], total, next_cursor)
        # SELECT count(*) FROM (SELECT 1 FROM runs WHERE <filters> LIMIT :n): the range scan stops
        # after count_max + 1 rows, however many match.
        bounded = select(literal_column("1")).select_from(Run).where(*filters).limit(count_max + 1).subquery()
        counted = await self.session.scalar(select(func.count()).select_from(bounded)) or 0
        if counted > count_max:
            return RunPage(rows[:limit], count_max, next_cursor, total_exact=False)
        return RunPage(rows[:limit], counted, next_cursor)

    async def mark_running(self, run_id: str, started_at: datetime) -> bool:
        """Move a queued (or already running, on resume) run to ``running``.

        False when the run does not exist or has finished (e.g. cancelled while queued):
        the worker must then not execute it.
        """
        return await self._update_unfinished(run_id, status=RunStatus.RUNNING.value, started_at=started_at)

    async def finish(
        self,
        run_id: str,
        status: RunStatus | str,
        outputs: dict[str, Any] | None,
        error: StepError | dict[str, Any] | None,
        finished_at: datetime,
    ) -> bool:
        """Record the end of an unfinished run. False when it does not exist or had already finished."""
        value = _run_status(status)
        if not RunStatus(value).finished:
            raise BadRequest(f"{value!r} is not a final run status")
        return await self._update_unfinished(
            run_id, status=value, outputs=outputs, error=_error_dict(error), finished_at=finished_at
        )

    async def _update_unfinished(self, run_id: str, **values: Any) -> bool:
        """UPDATE a queued/running run; a Run object of the session is refreshed with the new values.

        When the session holds no such object, only the id is read back (not the row, whose inputs and
        outputs would be decoded for nothing)."""
        if self.session.identity_key(Run, run_id) not in self.session.identity_map:
            prepared = _update_unfinished_statement(frozenset(values))
            result = await self.session.execute(prepared, {"_run_id": run_id, **values})
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]
        statement = update(Run).where(Run.id == run_id, Run.status.in_(_UNFINISHED)).values(**values)
        run = await self.session.scalar(
            statement.returning(Run), execution_options={"populate_existing": True}
        )
        return run is not None

    async def unfinished(self) -> builtins.list[Run]:
        """Every run still queued or running, oldest first (for recovery at start)."""
        statement = select(Run).where(Run.status.in_(_UNFINISHED)).order_by(Run.created_at, Run.id)
        return list(await self.session.scalars(statement))

    async def upsert_step(self, run_id: str, step_result: StepResult, max_output_bytes: int) -> StepRun:
        """Insert or update the row of ``step_result.step_id`` in the run.

        Outputs whose JSON is larger than ``max_output_bytes`` are stored as
        ``{"truncated": true, "size": N, "preview": ...}`` with ``output_truncated``; the logs are
        capped to the same size.
        """
        values = _step_values(step_result, max_output_bytes)
        insert = self._insert()
        statement = insert(StepRun).values(id=new_id(), run_id=run_id, step_id=step_result.step_id, **values)
        statement = statement.on_conflict_do_update(
            index_elements=[StepRun.run_id, StepRun.step_id],
            set_={name: statement.excluded[name] for name in values},
        ).returning(StepRun)
        try:
            step: StepRun | None = await self.session.scalar(
                statement, execution_options={"populate_existing": True}
            )
        except IntegrityError:
            raise NotFound(f"run {run_id!r} not found") from None
        if step is None:  # pragma: no cover - RETURNING always yields the row
            raise NotFound(f"run {run_id!r} not found")
        return step

    async def upsert_steps(
        self, run_id: str, step_results: Iterable[StepResult], max_output_bytes: int
    ) -> None:
        """Like :meth:`upsert_step` for several steps of the run, with nothing read back (the run service
        writes step states in batches and never reads them): one prepared statement executed for every
        row (executemany). When a step comes more than once, its last state wins."""
        rows = [
            {
                "id": new_id(),
                "run_id": run_id,
                "step_id": result.step_id,
                **_step_values(result, max_output_bytes),
            }
            for result in step_results
        ]
        if not rows:
            return
        try:
            await self.session.execute(self._upsert_statement(), rows)
        except IntegrityError:
            raise NotFound(f"run {run_id!r} not found") from None

    def _upsert_statement(self) -> Any:
        """The dialect's ``INSERT INTO step_runs ... ON CONFLICT (run_id, step_id) DO UPDATE``, built once
        (a Core statement on the table: SQLAlchemy compiles it once and caches it)."""
        dialect = self.session.get_bind().dialect.name
        statement = _UPSERT_STEPS.get(dialect)
        if statement is None:
            insert = self._insert()(StepRun.__table__)
            statement = insert.on_conflict_do_update(
                index_elements=[StepRun.run_id, StepRun.step_id],
                set_={name: insert.excluded[name] for name in STEP_VALUE_COLUMNS},
            )
            _UPSERT_STEPS[dialect] = statement
        return statement

    def _insert(self) -> Any:
        """The dialect's INSERT construct (with ON CONFLICT support)."""
        dialect = self.session.get_bind().dialect.name
        if dialect == "sqlite":
            return sqlite.insert
        if dialect == "postgresql":
            return postgresql.insert
        raise MashpipeError(f"unsupported database dialect {dialect!r}")  # pragma: no cover


@functools.lru_cache(maxsize=16)
def _update_unfinished_statement(columns: frozenset[str]) -> Any:
    """``UPDATE runs SET <columns> WHERE id = :_run_id AND status IN (queued, running)``, built once per set
    of columns (a Core statement with bound parameters: no construct rebuilt per call); the row count
    tells whether the run was updated."""
    table = cast(Table, Run.__table__)
    return (
        update(table)
        .where(table.c.id == bindparam("_run_id"), table.c.status.in_(_UNFINISHED))
        .values({name: bindparam(name) for name in sorted(columns)})
    )


def _step_values(step_result: StepResult, max_output_bytes: int) -> dict[str, Any]:
    """The stored columns of a step state (output and logs capped to ``max_output_bytes``)."""
    if max_output_bytes < 0:
        raise BadRequest("max_output_bytes must not be negative")
    output, truncated = _capped_output(step_result.output, max_output_bytes)
    return {
        "status": StepStatus(step_result.status).value,
        "attempts": step_result.attempts,
        "started_at": step_result.started_at,
        "finished_at": step_result.finished_at,
        "duration_ms": step_result.duration_ms,
        "output": output,
        "output_truncated": truncated,
        "error": _error_dict(step_result.error),
        "logs": cap_logs(list(step_result.logs), max_output_bytes),
    }


__all__ = ["RunRepo", "cap_logs", "cap_output", "stored_json"]
