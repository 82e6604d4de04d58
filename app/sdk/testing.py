"""Test helpers for connector authors: run an operation like the server does, and the standard checks.

::

    import respx
    from app.sdk.testing import check_connector, run_action

    def test_standard_checks():
        assert check_connector(github) == []

    @respx.mock
    async def test_list_issues():
        respx.get("https://api.github.com/repos/o/r/issues").respond(json=[...])
        out = await run_action(github, "list_issues", {"owner": "o", "repo": "r"},
                               credentials={"kind": "bearer", "token": "t"})
        assert out[0]["number"] == 1

``run_action`` / ``run_poll`` use the server's client stack (:func:`app.sdk.build_http_client`: egress
guard, size cap, pinned transport; respx intercepts below it) and the platform's invocation (param
validation, auth selection, output conversion, error mapping), so a test sees exactly what a run sees,
except that the SDK's own retries are off unless a test passes ``retry=RetryPolicy(...)``.
:class:`PollHarness` polls a trigger again and again with in-memory poll state (cursor, dedupe
window, baseline), as the platform does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel

from app.sdk.connector import Connector, Operation
from app.sdk.http import build_http_client
from app.sdk.invoke import CallOptions, PollResult, invoke_action, invoke_poll, invoke_webhook
from app.sdk.poll_harness import HarnessPoll as HarnessPoll
from app.sdk.poll_harness import PollHarness as PollHarness
from app.sdk.retries import RetryPolicy
from app.sdk.webhooks import WebhookRequest
from app.security.egress import Resolver


def settings_for_tests(**overrides: Any) -> Any:
    """Settings for tests: defaults, the environment ignored, plus ``overrides`` (``egress_allow=...``).

    SDK retries are off (``http_retries=0``) unless overridden, so a ``ConnectorCaller`` built on
    these settings fails at once on a 503 instead of waiting. The outbound transport is httpx's own
    (``http_transport="httpx"``), the one respx intercepts: the server's default (aiohttp) would send
    mocked requests to the network. Pass ``http_transport="aiohttp"`` against real local servers.
    """
    from app.settings import Settings

    return Settings.model_validate({"http_retries": 0, "http_transport": "httpx", **overrides})


def _operation(connector: Connector, name: str) -> Operation:
    operation = connector.operation(name)
    if operation is None:
        raise KeyError(
            f"connector {connector.key!r} has no operation {name!r}; it has {sorted(connector.operations)}"
        )
    return operation


async def _run(
    connector: Connector,
    name: str,
    call: Callable[[Operation, CallOptions], Any],
    *,
    credentials: Mapping[str, Any] | None,
    settings: Any,
    transport: httpx.AsyncBaseTransport | None,
    resolver: Resolver | None,
    log: list[str] | None,
    clock: Callable[[], datetime] | None,
    retry: RetryPolicy | None = None,
) -> Any:
    settings = settings if settings is not None else settings_for_tests()
    operation = _operation(connector, name)
    async with build_http_client(settings, transport=transport, resolver=resolver) as client:
        options = CallOptions(
            http_client=client,
            max_response_bytes=settings.response_max_bytes,
            credentials=credentials,
            log=log,
            run_id="test-run",
            step_id=f"test_{name}",
            clock=clock,
            retry=retry,
        )
        return await call(operation, options)


async def run_action(
    connector: Connector,
    name: str,
    params: Mapping[str, Any] | BaseModel | None = None,
    *,
    credentials: Mapping[str, Any] | None = None,
    settings: Any = None,
    transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver | None = None,
    log: list[str] | None = None,
    clock: Callable[[], datetime] | None = None,
    retry: RetryPolicy | None = None,
) -> Any:
    """Run action ``name`` of ``connector`` with ``params``: its JSON output, or its StepError raised.

    No SDK retries happen unless ``retry`` is given (``RetryPolicy(retries=2, sleep=fake_sleep)``), so
    a 503 fails at once and tests stay fast and exact.
    """
    return await _run(
        connector,
        name,
        lambda op, options: invoke_action(connector, op, params, options),
        credentials=credentials,
        settings=settings,
        transport=transport,
        resolver=resolver,
        log=log,
        clock=clock,
        retry=retry,
    )


async def run_poll(
    connector: Connector,
    name: str,
    params: Mapping[str, Any] | BaseModel | None = None,
    cursor: Any = None,
    *,
    credentials: Mapping[str, Any] | None = None,
    settings: Any = None,
    transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver | None = None,
    log: list[str] | None = None,
    clock: Callable[[], datetime] | None = None,
    retry: RetryPolicy | None = None,
) -> PollResult:
    """Run polling trigger ``name`` from the JSON ``cursor``; return its items, dedupe keys and new cursor.

    To follow a trigger across several polls (cursor kept, duplicates dropped, baseline first) as
    the platform does, use :class:`PollHarness`.
    """
    result: PollResult = await _run(
        connector,
        name,
        lambda op, options: invoke_poll(connector, op, params, cursor, options),
        credentials=credentials,
        settings=settings,
        transport=transport,
        resolver=resolver,
        log=log,
        clock=clock,
        retry=retry,
    )
    return result


async def run_webhook(
    connector: Connector,
    name: str,
    request: WebhookRequest,
    *,
    secret: str | None = None,
    credentials: Mapping[str, Any] | None = None,
    settings: Any = None,
    log: list[str] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> list[Any]:
    """Run webhook ``name`` on one call (signature checked against ``secret``); return its items as JSON.

    Build the call with ``WebhookRequest.build(raw_bytes, headers)``.
    """
    items: list[Any] = await _run(
        connector,
        name,
        lambda op, options: invoke_webhook(connector, op, request, options, secret=secret),
        credentials=credentials,
        settings=settings,
        transport=None,
        resolver=None,
        log=log,
        clock=clock,
    )
    return items


def _undocumented_fields(schema: dict[str, Any], where: str) -> list[str]:
    problems = []
    for field, spec in (schema.get("properties") or {}).items():
        if not isinstance(spec, dict) or not spec.get("description"):
            problems.append(f"{where}: parameter {field!r} has no description (Field(description=...))")
    return problems


def check_connector(connector: Connector) -> list[str]:
    """The standard checks every connector passes; returns the problems found (empty when fine).

    Metadata present; every operation titled and documented, each parameter described; schemas
    JSON-serializable; polls declare ``dedupe``; a connector needing credentials declares a
    ``test_request`` so a connection can be verified (except for auth kinds setting
    ``verified_by_request = False``: webhook URLs, whose only use posts a message, and credentials of
    another protocol); webhooks return a list.
    """
    problems: list[str] = []
    if not isinstance(connector, Connector):
        return [f"{connector!r} is not a Connector"]
    if not connector.description:
        problems.append(f"{connector.key}: no description")
    verifiable = [k for k in connector.auth if k.kind != "none" and k.verified_by_request]
    if verifiable and connector.test_request is None:
        problems.append(f"{connector.key}: declares auth but no test_request to verify a connection")
    for op in connector.operations.values():
        where = op.uses
        if not op.title or not op.description:
            problems.append(f"{where}: missing title or description")
        if not op.builtin:
            problems.extend(_undocumented_fields(op.input_schema, where))
        for label, schema in (("input", op.input_schema), ("output", op.output_schema)):
            try:
                json.dumps(schema)
            except (TypeError, ValueError) as exc:
                problems.append(f"{where}: {label} schema is not JSON: {exc}")
        if op.kind == "poll" and op.dedupe is None:
            problems.append(f"{where}: poll without dedupe")
        if op.kind == "webhook" and op.output_schema.get("type") != "array":
            problems.append(f"{where}: a webhook must return a list of items")
    return problems
