"""The poller: calls the polling triggers of connectors on their interval and starts runs for new items.

One loop per server process (:meth:`Poller.start`), on an injectable clock. For each due poll trigger:

1. **claim** it: a conditional ``UPDATE poll_state ... WHERE next_poll_at <= now AND (no lease or
   lease expired)`` gives this process a lease; another process finds nothing to update and moves on,
   so a trigger is never polled twice at once;
2. **poll** the connector (``ConnectorCaller.poll``: the SDK's ``invoke_poll`` with the platform's HTTP
   client and the trigger's connection resolved as for steps) from the stored cursor, within
   ``poll_timeout_seconds``;
3. **dedupe** the items by their key against the stored window (the last ``poll_dedupe_window`` keys)
   and within the batch;
4. **store** the new cursor and window, in the SAME transaction as the run started for the new items
   (one run per batch, ``trigger.items``), checking the lease is still ours: either both are
   committed or neither.

The first poll of a trigger is its **baseline**: its items are remembered and start nothing, so
turning a trigger on never fires on old data. A failed poll changes neither cursor nor window; it
is recorded (``last_error``, ``failures``) and the next poll waits ``every * 2^(failures-1)``, at most
``poll_max_backoff_seconds``. The state is keyed by the trigger row (pipeline, position, a hash of
``uses``/``with``/``connection``), so a new revision keeping the trigger keeps its cursor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import MashpipeError, StepError
from app.pipelines.durations import parse_duration
from app.runtime.admission import find_revision_spec
from app.runtime.background import BackgroundLoop, seconds_until
from app.runtime.clock import Clock
from app.runtime.masking import Masker, masking_scope
from app.runtime.poll_params import evaluate_poll_params
from app.runtime.queue import QueueClosed
from app.runtime.service import RunService
from app.runtime.trigger_secrets import SecretsResolver
from app.sdk.invoke import PollResult
from app.settings import Settings
from app.storage.base import new_id
from app.storage.db import Database
from app.storage.models import Run
from app.storage.models_triggers import PollState, TriggerRow
from app.storage.repositories.triggers import StaleTrigger, TriggerRepo

logger = logging.getLogger("mashpipe.poller")

LEASE_MARGIN = 30.0  # a lease outlives the poll timeout by this many seconds
MAX_ERROR_CHARS = 1000


class PollCaller(Protocol):
    """What the poller needs of a :class:`~app.runtime.caller.ConnectorCaller`."""

    def for_account(self, account_id: str | None) -> PollCaller:
        """A caller resolving the connections of ``account_id``."""
        ...

    async def poll(
        self,
        uses: str,
        params: Mapping[str, Any],
        cursor: Any,
        *,
        connection: str | None = None,
        log: list[str] | None = None,
    ) -> PollResult:
        """Run a polling trigger once from ``cursor``."""
        ...


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class PollOutcome:
    """What one poll of one trigger did."""

    trigger_id: str
    baseline: bool = False
    items: list[Any] = field(default_factory=list)
    """The new items (those that started the run; none on the baseline)."""
    duplicates: int = 0
    run_id: str | None = None
    error: dict[str, Any] | None = None
    lost: bool = False
    """The lease was lost before the result was stored: nothing was stored, no run started."""


def fresh_items(result: PollResult, seen: list[str]) -> tuple[list[Any], list[str], int]:
    """``(new items, their keys, duplicates dropped)``: items whose key is neither in ``seen`` nor
    earlier in the same batch."""
    known = set(seen)
    items: list[Any] = []
    keys: list[str] = []
    duplicates = 0
    for item, key in zip(result.items, result.keys, strict=True):
        if key in known:
            duplicates += 1
            continue
        known.add(key)
        items.append(item)
        keys.append(key)
    return items, keys, duplicates


class Poller(BackgroundLoop):
    """Polls the poll triggers of every account. See the module docstring.

    Stopping it: a poll in flight is abandoned (its lease expires, its state is unchanged)."""

    task_name = "mashpipe-poller"
    logger = logger

    def __init__(
        self,
        db: Database,
        runs: RunService,
        caller: PollCaller,
        settings: Settings,
        *,
        clock: Clock | None = None,
        secrets: SecretsResolver | None = None,
    ) -> None:
        self._db = db
        self._runs = runs
        self._caller = caller
        self._settings = settings
        self._secrets = secrets  # resolves the ``${{ secrets.NAME }}`` of a poll's ``with``
        super().__init__(clock)
        self._slots = asyncio.Semaphore(settings.poll_concurrency)

    # -- the loop ---------------------------------------------------------------------------------

    async def one_pass(self, now: datetime) -> float:
        """Poll what is due; sleep until the next poll (see :meth:`BackgroundLoop.run`)."""
        await self.tick(now)
        async with self._db.session() as session:
            planned = await TriggerRepo(session).next_poll_at()
        return seconds_until(planned, self.clock.now(), self._settings.trigger_idle_seconds)

    # -- one pass ---------------------------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> list[PollOutcome]:
        """Poll every trigger due at ``now`` (default: the clock's time) that this process can claim."""
        now = now or self.clock.now()
        async with self._db.session() as session:
            due = await TriggerRepo(session).due_polls(now)
        outcomes = await asyncio.gather(*(self._guarded(row, state, name, now) for row, state, name in due))
        return [outcome for outcome in outcomes if outcome is not None]

    async def _guarded(
        self, row: TriggerRow, state: PollState, name: str, now: datetime
    ) -> PollOutcome | None:
        async with self._slots:
            try:
                return await self.poll_trigger(row, state, name, now)
            except DBAPIError as exc:
                logger.warning("poll trigger %s: database error %s; retried later", row.id, exc)
            except Exception:
                logger.exception("poll trigger %s: unexpected error", row.id)
            return None

    def _interval(self, row: TriggerRow) -> float:
        try:
            every = parse_duration(row.params.get("every", "5m"))
        except ValueError:
            every = 300.0
        return max(every, self._settings.poll_min_interval_seconds)

    def _backoff(self, row: TriggerRow, failures: int) -> float:
        every = self._interval(row)
        cap = max(every, self._settings.poll_max_backoff_seconds)
        return float(min(cap, every * 2 ** min(max(failures - 1, 0), 30)))

    async def poll_trigger(
        self, row: TriggerRow, state: PollState, pipeline_name: str, now: datetime
    ) -> PollOutcome | None:
        """Claim, poll and record one trigger; None when another process holds it."""
        token = new_id()
        lease_until = now + timedelta(seconds=self._settings.poll_timeout_seconds + LEASE_MARGIN)
        async with self._db.session() as session:
            claimed = await TriggerRepo(session).claim_poll(row.id, token, now, lease_until)
            await session.commit()
        if claimed is None:
            return None
        row, state = claimed  # as they are now: another process may have polled since they were listed
        outcome = PollOutcome(trigger_id=row.id)
        params = row.params
        log: list[str] = []
        masker = Masker()
        try:
            async with asyncio.timeout(self._settings.poll_timeout_seconds):
                evaluated = await evaluate_poll_params(
                    params.get("with") or {}, row.account_id, self._secrets, lambda: self._inputs(row)
                )
                masker = evaluated.masker
                result = await self._caller.for_account(row.account_id).poll(
                    str(params["uses"]),
                    evaluated.values,
                    state.cursor,
                    connection=params.get("connection"),
                    log=log,
                )
        except TimeoutError:
            message = f"the poll took longer than {self._settings.poll_timeout_seconds:g}s"
            return await self._failed(row, token, outcome, "timeout", message, state.failures)
        except StepError as exc:
            message = masker.text(exc.message)
            return await self._failed(row, token, outcome, exc.code, message, state.failures)
        except Exception as exc:
            with masking_scope(masker):
                logger.exception("poll trigger %s: the connector's poll raised", row.id)
            message = masker.text(f"{type(exc).__name__}: {exc}")
            return await self._failed(row, token, outcome, "internal_error", message, state.failures)

        finished = self.clock.now()
        seen = list(state.seen or [])
        items, keys, outcome.duplicates = fresh_items(result, seen)
        window = (seen + keys)[-self._settings.poll_dedupe_window :]
        next_poll_at = finished + timedelta(seconds=self._interval(row))
        outcome.baseline = not state.baselined

        async def store(session: AsyncSession, run: Run | None = None) -> None:
            await TriggerRepo(session).finish_poll(
                row.id,
                token,
                cursor=result.cursor,
                seen=window,
                next_poll_at=next_poll_at,
                now=finished,
                run_id=run.id if run is not None else None,
            )

        try:
            if outcome.baseline or not items:
                async with self._db.session() as session:
                    await store(session)
                    await session.commit()
                if outcome.baseline:
                    logger.info(
                        "poll trigger %s of %r: baseline of %d item(s)", row.id, pipeline_name, len(keys)
                    )
                return outcome
            trigger = {
                "kind": "poll",
                "items": items,
                "uses": params["uses"],
                "polled_at": _iso(finished),
            }
            run = await self._runs.submit(
                account_id=row.account_id,
                pipeline_name=pipeline_name,
                inputs={},
                trigger=trigger,
                in_transaction=store,
            )
        except StaleTrigger:
            logger.warning(
                "poll trigger %s: the lease was lost before the result was stored; dropped", row.id
            )
            outcome.lost = True
            return outcome
        except QueueClosed:
            logger.info(
                "poll trigger %s: run recorded while shutting down; it starts after a restart", row.id
            )
            outcome.items = items
            return outcome
        except MashpipeError as exc:  # the run cannot be created: the items are polled again later
            return await self._failed(
                row, token, outcome, exc.code, f"could not start a run: {exc.message}", state.failures
            )
        outcome.items, outcome.run_id = items, run.id
        logger.info(
            "poll trigger %s of %r: %d new item(s), run %s", row.id, pipeline_name, len(items), run.id
        )
        return outcome

    async def _inputs(self, row: TriggerRow) -> dict[str, Any]:
        """The inputs a run of the trigger's revision gets without any given (its defaults)."""
        async with self._db.session() as session:
            spec = await find_revision_spec(session, self._runs.plans, row.pipeline_id, row.revision)
        if spec is None:
            return {}
        return {name: given.default for name, given in spec.inputs.items() if given.default is not None}

    async def _failed(
        self, row: TriggerRow, token: str, outcome: PollOutcome, code: str, message: str, failures: int
    ) -> PollOutcome:
        now = self.clock.now()
        delay = self._backoff(row, failures + 1)
        error = {
            "code": code,
            "message": message[:MAX_ERROR_CHARS],
            "at": _iso(now),
            "retry_at": _iso(now + timedelta(seconds=delay)),
        }
        async with self._db.session() as session:
            kept = await TriggerRepo(session).fail_poll(
                row.id, token, error=error, next_poll_at=now + timedelta(seconds=delay), now=now
            )
            await session.commit()
        logger.warning("poll trigger %s failed (%s): %s; next poll in %gs", row.id, code, message, delay)
        outcome.error = error
        outcome.lost = not kept
        return outcome
