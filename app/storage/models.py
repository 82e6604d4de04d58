"""The tables of Mashpipe, as SQLAlchemy 2 declarative models.

Every id is a UUID4 in 32 hex characters (:func:`~app.storage.base.new_id`), every timestamp an
aware UTC datetime (:class:`~app.storage.types.UTCDateTime`). Relationships are ``lazy="raise"``:
touching one that was not eagerly loaded fails loudly instead of emitting hidden SQL.
Deleting a parent relies on the database's ``ON DELETE CASCADE`` (``passive_deletes=True``).

::

    accounts ─┬─< api_keys
              ├─< pipelines ─┬─< pipeline_revisions
              │              └─< runs ─< step_runs
              └─< runs
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.engine.types import StepError, StepResult, StepStatus
from app.storage.base import ID_LENGTH, Base, new_id, utcnow
from app.storage.models_connections import ConnectionRow as ConnectionRow  # connections (task S2)
from app.storage.models_hooks import Hook as Hook  # the webhook tables (task H3)
from app.storage.models_secrets import Secret as Secret  # the secrets table (task S1)
from app.storage.models_triggers import TriggerRow as TriggerRow  # schedule and poll triggers (task H2)
from app.storage.types import JSONDocument, UTCDateTime

__all__ = ["Account", "ApiKey", "Pipeline", "PipelineRevision", "Run", "StepRun"]


def _id_column() -> Mapped[str]:
    return mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)


def _account_fk() -> Mapped[str]:
    return mapped_column(String(ID_LENGTH), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False)


class Account(Base):
    """A tenant: owns API keys, pipelines and runs. Everything is scoped by account."""

    __tablename__ = "accounts"

    id: Mapped[str] = _id_column()
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    api_keys: Mapped[list[ApiKey]] = relationship(
        back_populates="account", lazy="raise", passive_deletes=True
    )
    pipelines: Mapped[list[Pipeline]] = relationship(
        back_populates="account", lazy="raise", passive_deletes=True
    )


class ApiKey(Base):
    """An API key of an account. Only its HMAC (``key_hash``) and first characters are kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = _id_column()
    account_id: Mapped[str] = _account_fk()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    account: Mapped[Account] = relationship(back_populates="api_keys", lazy="raise")

    __table_args__ = (Index("ix_api_keys_account_id_created_at", "account_id", "created_at"),)

    def is_active(self, now: datetime) -> bool:
        """True when the key is neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class Pipeline(Base):
    """A named pipeline of an account; its content lives in immutable revisions."""

    __tablename__ = "pipelines"

    id: Mapped[str] = _id_column()
    account_id: Mapped[str] = _account_fk()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    latest_revision: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    account: Mapped[Account] = relationship(back_populates="pipelines", lazy="raise")
    revisions: Mapped[list[PipelineRevision]] = relationship(
        back_populates="pipeline", lazy="raise", passive_deletes=True
    )
    runs: Mapped[list[Run]] = relationship(back_populates="pipeline", lazy="raise", passive_deletes=True)

    __table_args__ = (UniqueConstraint("account_id", "name"),)


class PipelineRevision(Base):
    """One immutable version of a pipeline: the YAML source verbatim and its validated spec."""

    __tablename__ = "pipeline_revisions"

    id: Mapped[str] = _id_column()
    pipeline_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)
    source_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    pipeline: Mapped[Pipeline] = relationship(back_populates="revisions", lazy="raise")

    __table_args__ = (UniqueConstraint("pipeline_id", "number"),)


class Run(Base):
    """One execution of a pipeline revision.

    ``pipeline_name`` and ``revision`` (the revision number) are copied in, so listing runs
    needs no join. The indexes serve keyset pagination newest first (``(created_at, id) <
    cursor``) and the ``total`` count, per account, optionally filtered by pipeline and/or
    status; ``ix_runs_status`` serves recovery at start, ``ix_runs_pipeline_id_status`` the
    cascade and the per-pipeline concurrency counts (runs running / in progress).

    ``retry_of`` is the run this one retries (``attempt`` = its attempt + 1); no foreign key, so
    retention may prune the original. ``heartbeat_at`` is refreshed while a process executes the
    run; a ``running`` run whose heartbeat is stale was left by a dead process (see
    :mod:`app.runtime.recovery`).
    """

    __tablename__ = "runs"

    id: Mapped[str] = _id_column()
    account_id: Mapped[str] = _account_fk()
    pipeline_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False
    )
    pipeline_name: Mapped[str] = mapped_column(String(100), nullable=False)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    trigger_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    trigger: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    retry_of: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    step_states: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONDocument, nullable=True)
    """The steps' final states of a run recorded in one piece (a succeeded published-endpoint run, see
    :mod:`app.storage.repositories.run_writes`), instead of ``step_runs`` rows; None for the others."""

    pipeline: Mapped[Pipeline] = relationship(back_populates="runs", lazy="raise")
    steps: Mapped[list[StepRun]] = relationship(back_populates="run", lazy="raise", passive_deletes=True)

    __table_args__ = (
        Index("ix_runs_account_id_created_at_id", "account_id", "created_at", "id"),
        Index(
            "ix_runs_account_id_pipeline_id_created_at_id_status",
            "account_id",
            "pipeline_id",
            "created_at",
            "id",
            "status",  # trailing: filters and counts by pipeline + status without reading rows
        ),
        Index("ix_runs_account_id_status_created_at_id", "account_id", "status", "created_at", "id"),
        Index("ix_runs_status", "status"),
        Index("ix_runs_pipeline_id_status", "pipeline_id", "status"),
    )

    @property
    def duration_ms(self) -> int | None:
        """Milliseconds from start to finish, when both are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)


class StepRun(Base):
    """The recorded state of one step of a run (one row per step, updated as it progresses)."""

    __tablename__ = "step_runs"

    id: Mapped[str] = _id_column()
    run_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
    )
    step_id: Mapped[str] = mapped_column(String(100), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    output: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    output_truncated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)
    logs: Mapped[list[str]] = mapped_column(JSONDocument, nullable=False, default=list)

    run: Mapped[Run] = relationship(back_populates="steps", lazy="raise")

    __table_args__ = (UniqueConstraint("run_id", "step_id"),)

    def to_result(self) -> StepResult:
        """This row as the engine's :class:`~app.engine.types.StepResult` (e.g. to resume a run).

        A truncated output is given back in its stored (truncated) form: check
        ``output_truncated`` before reusing it as a real output.
        """
        error = None
        if self.error is not None:
            error = StepError(
                code=str(self.error.get("code", "step_failed")),
                message=str(self.error.get("message", "")),
                details=self.error.get("details"),
            )
        return StepResult(
            step_id=self.step_id,
            status=StepStatus(self.status),
            attempts=self.attempts,
            started_at=self.started_at,
            finished_at=self.finished_at,
            output=self.output,
            error=error,
            logs=list(self.logs or []),
        )
