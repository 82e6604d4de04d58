"""Runs created by this process, handed to its own claim without reading them back from the database.

:meth:`RunService.create_run <app.runtime.service.RunService.create_run>` records a run, and the same
process usually claims it a moment later. Reading the run back at claim time would fetch and decode its
inputs again (often the largest value of the row). Instead, :class:`CreatedRuns` keeps what the claim
needs: the run's unchanging columns and the JSON *text* of its inputs and trigger, which is exactly the
text stored in the row (the same :func:`~app.storage.types.dumps_json` of the same values, kept verbatim
by SQLite ``TEXT`` and PostgreSQL ``JSON`` columns), so decoding it gives what a read would give.

The claim itself still decides, in the database, whether the run starts (its status is checked by the
conditional ``UPDATE``); an entry only spares the ``SELECT``. Entries are bounded in number and bytes
(oldest dropped first): a run executed by another process, or dropped, just ages out.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from app.engine.types import RunStatus
from app.storage.models import Run
from app.storage.repositories.runs import stored_json
from app.storage.types import dumps_json, loads_json

MAX_RUNS = 1024
MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CreatedRun:
    """What a claim needs of a run recorded by this process (as stored)."""

    id: str
    account_id: str
    pipeline_id: str
    pipeline_name: str
    revision: int
    trigger_kind: str
    attempt: int
    retry_of: str | None
    created_at: datetime
    trigger_json: str
    inputs_json: str

    @property
    def size(self) -> int:
        return len(self.inputs_json) + len(self.trigger_json)

    def run(self) -> Run:
        """A detached :class:`Run` as stored when it was created (``queued``, never started)."""
        return Run(
            id=self.id,
            account_id=self.account_id,
            pipeline_id=self.pipeline_id,
            pipeline_name=self.pipeline_name,
            revision=self.revision,
            status=RunStatus.QUEUED.value,
            trigger_kind=self.trigger_kind,
            trigger=loads_json(self.trigger_json),
            inputs=loads_json(self.inputs_json),
            outputs=None,
            error=None,
            created_at=self.created_at,
            started_at=None,
            finished_at=None,
            attempt=self.attempt,
            retry_of=self.retry_of,
        )


class CreatedRuns:
    """Queued runs recorded by this process, until claimed here (bounded; see the module)."""

    def __init__(self, *, max_runs: int = MAX_RUNS, max_bytes: int = MAX_BYTES) -> None:
        self.max_runs = max(0, max_runs)
        self.max_bytes = max(0, max_bytes)
        self._runs: OrderedDict[str, CreatedRun] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._runs)

    def add(self, run: Run) -> None:
        """Remember a ``queued`` run just committed (its inputs and trigger as the row holds them)."""
        if run.status != RunStatus.QUEUED.value or self.max_runs == 0:
            return
        written = stored_json(run)  # the text RunRepo.create wrote (else the same encoding again)
        entry = CreatedRun(
            id=run.id,
            account_id=run.account_id,
            pipeline_id=run.pipeline_id,
            pipeline_name=run.pipeline_name,
            revision=run.revision,
            trigger_kind=run.trigger_kind,
            attempt=run.attempt,
            retry_of=run.retry_of,
            created_at=run.created_at,
            trigger_json=written[1] if written else dumps_json(run.trigger),
            inputs_json=written[0] if written else dumps_json(run.inputs),
        )
        if entry.size > self.max_bytes:
            return
        self._discard(run.id)
        self._runs[run.id] = entry
        self._bytes += entry.size
        while len(self._runs) > self.max_runs or self._bytes > self.max_bytes:
            _, oldest = self._runs.popitem(last=False)
            self._bytes -= oldest.size

    def pop(self, run_id: str) -> CreatedRun | None:
        """The entry of ``run_id`` (forgotten from now on), or None."""
        entry = self._runs.pop(run_id, None)
        if entry is not None:
            self._bytes -= entry.size
        return entry

    def _discard(self, run_id: str) -> None:
        self.pop(run_id)
