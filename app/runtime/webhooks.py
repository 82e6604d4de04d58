"""Webhook deliveries: ``POST /v1/hooks/{hook_id}`` turned into runs.

A pipeline saved with ``webhook`` triggers gets one hook per trigger (:func:`sync_hooks`, called by the
pipeline save path); the hook id is the unguessable part of its URL and the only credential of a call.
:meth:`WebhookService.deliver` handles one call:

1. find the enabled hook and its pipeline (one query), and the webhook trigger of the latest revision;
2. check the signature when the trigger has a ``verify`` block (HMAC-SHA256 or Standard Webhooks, over
   the raw body): a missing or wrong signature is a 401 and nothing is recorded;
3. with ``dedupe_header``, a value seen before answers with the first run's id and starts nothing;
4. record the run through :meth:`RunService.submit` (the one entry point to the queue) with
   ``trigger = {kind: webhook, hook, body, headers, query}``; the delivery row goes into the same
   transaction, so two concurrent identical deliveries start exactly one run (the loser's insert
   breaks the unique ``(hook_id, dedupe_key)`` constraint, its run is rolled back, and it answers
   like a redelivery).

Secrets in ``verify`` (``${{ secrets.NAME }}``) are resolved through a
:class:`~app.runtime.trigger_secrets.SecretsResolver`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import ExpressionError, MashpipeError, NotFound
from app.pipelines.durations import parse_duration
from app.pipelines.expressions import CompiledValue, Scope, compile_value
from app.pipelines.inputs import coerce_inputs
from app.pipelines.spec import PipelineSpec, WebhookTrigger
from app.runtime.admission import find_revision_spec
from app.runtime.delivery_batcher import BatcherClosed, DeliveryBatcher, NewDelivery
from app.runtime.limits import limit_of
from app.runtime.lookups import RememberedLookups
from app.runtime.plans import PlanCache, revision_key
from app.runtime.queue import QueueClosed
from app.runtime.service import RunService
from app.runtime.trigger_secrets import SecretsResolver, read_secrets
from app.sdk.webhooks import WebhookSignatureInvalid, decode_body
from app.security.webhook_signatures import Clock, check_hmac_sha256, check_standard_webhooks
from app.storage.db import Database
from app.storage.models import Pipeline, Run
from app.storage.models_hooks import MAX_DEDUPE_KEY_LENGTH, Hook
from app.storage.repositories import HookRepo

logger = logging.getLogger("mashpipe.webhooks")

HIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
"""Headers a run never sees in ``trigger.headers`` (credentials of the caller, not data)."""
RESERVED_QUERY = frozenset({"wait"})
"""Query parameters of the hook URL itself, left out of ``trigger.query``."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One inbound call: the raw body, the headers (names lower-cased, in order) and the query."""

    raw: bytes
    headers: Sequence[tuple[str, str]]
    query: Sequence[tuple[str, str]]

    def header_map(self) -> dict[str, str]:
        """Headers by lower-case name; repeated headers joined with ``", "``."""
        merged: dict[str, str] = {}
        for name, value in self.headers:
            key = name.lower()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        return merged


@dataclass(frozen=True, slots=True)
class HookTarget:
    """What a hook starts: the pipeline (by name, at its latest revision) and the webhook trigger."""

    hook_id: str
    account_id: str
    pipeline_id: str
    pipeline_name: str
    revision: int
    trigger: WebhookTrigger


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What a delivery did: the run it started, or (``duplicate``) the run an earlier one started."""

    run_id: str
    account_id: str
    duplicate: bool


class StorageBusy(MashpipeError):
    """503: the database stayed locked by other writers; nothing was recorded, the call may be retried."""

    status = 503
    code = "busy"


BUSY_RETRIES = (0.05, 0.2, 0.5)
"""Waits before retrying a run that could not be recorded because SQLite was locked by other writers."""


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (its busy timeout ran out under heavy writes)."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc)


async def submit_retrying_busy(runs: RunService, **kwargs: Any) -> Run:
    """:meth:`RunService.submit`, retried a few times when SQLite is locked (the failed transaction was
    rolled back, so a retry records the run once); :class:`StorageBusy` (503) when it stays locked."""
    for wait in (*BUSY_RETRIES, None):
        try:
            return await runs.submit(**kwargs)
        except OperationalError as exc:
            if not is_busy(exc):
                raise
            if wait is None:
                raise StorageBusy("the database is busy; nothing was recorded, retry the call") from None
            logger.info("recording a run: the database is locked, retrying in %.2fs", wait)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


async def sync_hooks(session: AsyncSession, pipeline: Pipeline, spec: PipelineSpec) -> list[Hook]:
    """Give the pipeline one enabled hook per webhook trigger of ``spec`` (ids kept across revisions)."""
    count = sum(1 for trigger in spec.triggers if trigger.webhook is not None)
    return await HookRepo(session).sync(pipeline, count)


async def pipeline_hooks(session: AsyncSession, pipeline_id: str) -> list[Hook]:
    """The pipeline's enabled hooks, by position among its webhook triggers."""
    return await HookRepo(session).list(pipeline_id)


def dedupe_key(value: str) -> str:
    """The stored form of a ``dedupe_header`` value: itself, or a SHA-256 when it is too long."""
    value = value.strip()
    if len(value) <= MAX_DEDUPE_KEY_LENGTH:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def trigger_payload(hook_id: str, delivery: Delivery, headers: Mapping[str, str]) -> dict[str, Any]:
    """``trigger`` of the run: the decoded body, the headers a run may see, the query."""
    body = decode_body(delivery.raw, httpx.Headers(dict(headers)))
    query: dict[str, str] = {}
    for name, value in delivery.query:
        if name not in RESERVED_QUERY:
            query.setdefault(name, value)
    return {
        "kind": "webhook",
        "hook": hook_id,
        "body": body,
        "headers": {name: value for name, value in headers.items() if name not in HIDDEN_HEADERS},
        "query": query,
    }


@functools.lru_cache(maxsize=256)
def _compiled(template: str) -> CompiledValue:
    return compile_value(template)


class WebhookService:
    """Handles hook deliveries for the API; one per process."""

    def __init__(
        self,
        db: Database,
        runs: RunService,
        plans: PlanCache,
        *,
        secrets: SecretsResolver,
        clock: Clock = time.time,
        lookup_ttl: float = 1.0,
        max_targets: int = 1024,
        batcher: DeliveryBatcher | None = None,
    ) -> None:
        self._db = db
        self.batcher = batcher or DeliveryBatcher(db, on_commit=self._enqueue)
        self._runs = runs
        self._plans = plans
        self._secrets = secrets
        self._clock = clock
        self._lookup_ttl = lookup_ttl
        self._max_targets = max_targets
        self._targets: RememberedLookups[str, HookTarget] = RememberedLookups(lookup_ttl, max_targets)

    async def target(self, hook_id: str) -> HookTarget:
        """The enabled hook ``hook_id`` with its pipeline's name and latest revision (``NotFound``).

        Remembered for ``lookup_ttl`` seconds (no database read per delivery; concurrent deliveries wait
        for one read); saving or deleting the pipeline through this process forgets it at once
        (:meth:`forget_pipeline`).
        """
        return await self._targets.get(hook_id, lambda: self._load_target(hook_id))

    async def _load_target(self, hook_id: str) -> HookTarget:
        async with self._db.session() as session:
            row = await HookRepo(session).target(hook_id)
            if row is None:
                raise NotFound("no such hook")
            hook, pipeline = row
            spec = await self._spec(session, pipeline.id, pipeline.latest_revision)
        webhooks = [trigger.webhook for trigger in spec.triggers if trigger.webhook is not None]
        if hook.ordinal >= len(webhooks):
            raise NotFound("no such hook")
        return HookTarget(
            hook_id=hook.id,
            account_id=hook.account_id,
            pipeline_id=pipeline.id,
            pipeline_name=pipeline.name,
            revision=pipeline.latest_revision,
            trigger=webhooks[hook.ordinal],
        )

    async def aclose(self) -> None:
        """At shutdown: write the deliveries waiting for their batch (their callers get answers)."""
        await self.batcher.close()

    def forget_pipeline(self, pipeline_id: str) -> None:
        """Forget the remembered hooks of a pipeline (it was saved or deleted)."""
        self._targets.forget_where(lambda target: target.pipeline_id == pipeline_id)

    async def deliver(self, hook_id: str, delivery: Delivery) -> DeliveryOutcome:
        """Verify a call and start its run (see the module docstring).

        ``NotFound`` for an unknown or disabled hook, :class:`WebhookSignatureInvalid` (401) for a bad or
        missing signature, ``BadRequest`` for a body that is not what its content type says,
        ``Unprocessable`` when the pipeline's inputs have no defaults to run with.
        """
        target = await self.target(hook_id)
        headers = delivery.header_map()
        await self._verify(target.trigger, target.account_id, delivery.raw, headers)
        payload = trigger_payload(target.hook_id, delivery, headers)
        key = None
        if target.trigger.dedupe_header:
            value = headers.get(target.trigger.dedupe_header.lower())
            key = dedupe_key(value) if value and value.strip() else None
        return await self._submit(target, payload, key)

    async def _spec(self, session: AsyncSession, pipeline_id: str, number: int) -> PipelineSpec:
        spec = await find_revision_spec(session, self._plans, pipeline_id, number)
        if spec is None:
            raise NotFound("no such hook")
        return spec

    async def _submit(self, target: HookTarget, payload: dict[str, Any], key: str | None) -> DeliveryOutcome:
        """Record the run with the deliveries arriving together (group commit, :mod:`app.runtime.
        delivery_batcher`), then queue it. A pipeline with a ``skip``/``fail`` concurrency limit (checked
        when the run is recorded), a spec not in the plan cache, or a batch that failed on something else
        than a locked database: the run is recorded alone (:meth:`_submit_alone`)."""
        spec = self._plans.cached_spec(revision_key(target.pipeline_id, target.revision))
        limit = limit_of(spec) if spec is not None else None
        if spec is None or (limit is not None and limit.on_conflict != "queue"):
            return await self._submit_alone(target, payload, key)
        inputs = coerce_inputs(spec, {})
        delivery = NewDelivery(
            hook_id=target.hook_id,
            account_id=target.account_id,
            pipeline_id=target.pipeline_id,
            pipeline_name=target.pipeline_name,
            revision=target.revision,
            trigger=payload,
            inputs=inputs,
            dedupe_key=key,
        )
        try:
            recorded = await self.batcher.record(delivery)
        except BatcherClosed:
            raise
        except OperationalError as exc:
            if not is_busy(exc):
                raise
            raise StorageBusy("the database is busy; nothing was recorded, retry the call") from None
        except Exception:
            logger.info("a batch of deliveries failed; recording the delivery alone", exc_info=True)
            return await self._submit_alone(target, payload, key)
        return DeliveryOutcome(recorded.run_id, target.account_id, duplicate=recorded.duplicate)

    async def _enqueue(self, run_ids: list[str]) -> None:
        """Hand the runs of a committed batch to the queue (by the batcher: a caller that goes away
        meanwhile does not leave its run behind)."""
        if self._runs.queue is None:
            return
        for run_id in run_ids:
            try:
                await self._runs.queue.enqueue(run_id)
            except QueueClosed:
                return  # shutting down: the runs stay queued in the database and start after a restart

    async def _submit_alone(
        self, target: HookTarget, payload: dict[str, Any], key: str | None
    ) -> DeliveryOutcome:
        """Record the run (and the delivery, in the same transaction). No read first: a redelivery is
        found by the unique ``(hook_id, dedupe_key)`` constraint, which rolls its run back."""

        async def record_delivery(session: AsyncSession, run: Run) -> None:
            if key is not None:
                await HookRepo(session).add_delivery(target.hook_id, key, run.id)

        try:
            run = await submit_retrying_busy(
                self._runs,
                account_id=target.account_id,
                pipeline_name=target.pipeline_name,
                inputs={},
                revision=target.revision,
                trigger=payload,
                in_transaction=record_delivery,
            )
        except IntegrityError:
            if key is None:
                raise
            # A redelivery, or a concurrent identical delivery that won the race: its run is the one.
            async with self._db.session() as session:
                earlier = await HookRepo(session).delivery_run(target.hook_id, key)
            if earlier is None:
                raise
            return DeliveryOutcome(earlier, target.account_id, duplicate=True)
        return DeliveryOutcome(run.id, target.account_id, duplicate=False)

    async def _verify(
        self, trigger: WebhookTrigger, account_id: str, raw: bytes, headers: Mapping[str, str]
    ) -> None:
        verify = trigger.verify
        if verify is None:
            return
        reason: str | None = None
        if verify.hmac_sha256 is not None:
            hmac_spec = verify.hmac_sha256
            secret = await self._secret(account_id, hmac_spec.secret)
            signature = headers.get(hmac_spec.header.lower())
            reason = check_hmac_sha256(secret, raw, signature, hmac_spec.prefix)
        if reason is None and verify.standard_webhooks is not None:
            standard = verify.standard_webhooks
            secret = await self._secret(account_id, standard.secret)
            tolerance = parse_duration(standard.tolerance)
            reason = check_standard_webhooks(secret, raw, headers, tolerance=tolerance, clock=self._clock)
        if reason is not None:
            raise WebhookSignatureInvalid(f"the call's signature is refused: {reason}")

    async def _secret(self, account_id: str, template: str) -> str:
        """The secret of a ``verify`` block: a literal, or its ``${{ secrets.NAME }}`` evaluated.

        A secret the account does not have (or cannot be decrypted) gives ``""``, which refuses every call.
        """
        if "${{" not in template:
            return template
        try:
            value = _compiled(template)
            resolved, missing = await read_secrets(value, account_id, self._secrets)
            if missing:
                logger.warning("a hook of account %s checks a signature with a missing secret", account_id)
                return ""
            result = value.evaluate(Scope({"secrets": resolved, "inputs": {}, "trigger": {}, "run": {}}))
        except (ExpressionError, MashpipeError, ValueError) as exc:
            logger.warning("a hook of account %s: its verify secret cannot be read: %s", account_id, exc)
            return ""
        return result if isinstance(result, str) else ""
