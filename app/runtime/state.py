"""The typed state of a running server, built (and torn down) by the app's lifespan.

Nothing here exists at import time: :func:`open_state` builds the database handle, the connector
registry, the outbound HTTP client, the secret key, the plan cache, the run service and its queue, then
migrates the database, bootstraps the ``default`` account, loads the examples and recovers the runs an
earlier process left behind.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.registry import Registry
from app.runtime.bootstrap import Bootstrap, ensure_default_account, load_examples
from app.runtime.caller import ConnectorCaller
from app.runtime.connections import ConnectionService
from app.runtime.direct_runs import DirectRuns
from app.runtime.endpoints import EndpointService
from app.runtime.maintenance import Maintenance
from app.runtime.masking import install_log_masking
from app.runtime.plans import PlanCache
from app.runtime.poller import Poller
from app.runtime.queue import InProcessQueue, RunQueue
from app.runtime.run_recorder import RunRecorder
from app.runtime.run_secrets import RunSecrets
from app.runtime.scheduler import Scheduler
from app.runtime.service import RunService
from app.runtime.trigger_secrets import StoreSecrets
from app.runtime.webhooks import WebhookService
from app.sdk.http import build_http_client
from app.security.connection_store import ConnectionStore
from app.security.crypto import Encryptor
from app.security.keys import load_secret_key
from app.security.ratelimit import RateLimits
from app.security.secret_store import SecretStore
from app.settings import Settings
from app.storage.db import Database

logger = logging.getLogger("mashpipe")


@dataclass(frozen=True, slots=True)
class State:
    """Everything a request handler may need, built once per process."""

    settings: Settings
    db: Database
    registry: Registry
    http: httpx.AsyncClient
    secret_key: bytes
    plans: PlanCache
    runs: RunService
    queue: RunQueue
    bootstrap: Bootstrap
    encryptor: Encryptor  # secrets and connection credentials at rest (app.security.crypto)
    secrets: SecretStore
    rate_limits: RateLimits
    hooks: WebhookService  # POST /v1/hooks/{id} deliveries (app.runtime.webhooks)
    endpoints: EndpointService  # GET /v1/apps/{account}/{name} and its cache (app.runtime.endpoints)
    connections: ConnectionService  # stored connections and OAuth2 tokens (app.runtime.connections)
    scheduler: Scheduler | None = None  # schedule triggers (None: MASHPIPE_TRIGGERS_ENABLED=false)
    poller: Poller | None = None  # polling triggers (None: MASHPIPE_TRIGGERS_ENABLED=false)
    cache: dict[str, Any] = field(default_factory=dict)  # documents computed once per process


@asynccontextmanager
async def open_state(
    settings: Settings, *, http_transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[State]:
    """Build the state, run the start-up chores, yield it, and release everything on exit."""
    async with AsyncExitStack() as stack:
        rate_limits = RateLimits.from_settings(settings)  # a malformed limit fails before any I/O
        stack.push_async_callback(rate_limits.aclose)
        install_log_masking()  # log records made inside a run mask its secrets (app.runtime.masking)
        db = Database(settings.database_url)
        stack.push_async_callback(db.dispose)
        await db.upgrade()
        secret_key = load_secret_key(settings)
        encryptor = Encryptor.from_settings(settings)
        secrets = SecretStore(encryptor)
        registry = Registry.load(settings)
        http = build_http_client(settings, transport=http_transport)
        stack.push_async_callback(http.aclose)
        plans = PlanCache()
        connections = ConnectionService(db, ConnectionStore(encryptor, registry, http))
        caller = ConnectorCaller(registry, http, settings, connections)
        runs = RunService(
            db,
            settings,
            caller,
            plans=plans,
            secrets=RunSecrets(db, secrets),
        )
        queue = InProcessQueue(runs.execute, max_concurrent=settings.max_concurrent_runs)
        runs.attach_queue(queue)

        bootstrap = await ensure_default_account(db, settings, secret_key)
        if bootstrap.generated_key is not None:
            logger.warning(
                "created account 'default' with API key %s; it is shown only this once "
                "(set MASHPIPE_BOOTSTRAP_KEY to choose it)",
                bootstrap.generated_key,
            )
        if settings.examples_dir:
            if bootstrap.account_id is None:
                logger.warning("no account named 'default': the examples are not loaded")
            else:
                await load_examples(
                    db,
                    registry,
                    Path(settings.examples_dir),
                    bootstrap.account_id,
                    max_bytes=settings.max_yaml_bytes,
                )
        await runs.recover()
        await queue.start()
        stack.push_async_callback(queue.stop)
        maintenance = Maintenance(runs, db, settings)  # heartbeats, recovery sweeps, retention
        await maintenance.start()
        stack.push_async_callback(maintenance.stop)
        scheduler = poller = None
        if settings.triggers_enabled:  # schedules and polls (app.runtime.scheduler, app.runtime.poller)
            scheduler = Scheduler(db, runs, settings)
            poller = Poller(db, runs, caller, settings, secrets=StoreSecrets(db, secrets))
            for loop in (scheduler, poller):
                await loop.start()
                stack.push_async_callback(loop.stop)
        hooks = WebhookService(
            db,
            runs,
            plans,
            secrets=StoreSecrets(db, secrets),
            lookup_ttl=settings.published_lookup_ttl,
            max_targets=settings.endpoint_cache_entries,
        )
        stack.push_async_callback(hooks.aclose)  # pending deliveries written before the queue stops
        recorder = RunRecorder(db, max_output_bytes=settings.step_output_max_bytes)
        direct = DirectRuns(plans, settings, runs.caller_for, recorder, secrets=runs.secrets)
        runs.write_behind = recorder.flush
        stack.push_async_callback(direct.aclose)  # endpoint runs' records written at shutdown
        endpoints = EndpointService(db, runs, plans, settings, direct=direct)
        yield State(
            settings=settings,
            db=db,
            registry=registry,
            http=http,
            secret_key=secret_key,
            plans=plans,
            runs=runs,
            queue=queue,
            bootstrap=bootstrap,
            encryptor=encryptor,
            secrets=secrets,
            rate_limits=rate_limits,
            connections=connections,
            hooks=hooks,
            endpoints=endpoints,
            scheduler=scheduler,
            poller=poller,
        )
