"""``POST /v1/connections/{name}/test``: send the connector's ``test_request`` with a connection.

The request goes through the same path as an operation's (``ctx.http``: base URL, the connection's
auth on the base URL's origin only, egress guard, size cap); its outcome is ``{ok, status, message}``:
``ok`` for a 2xx answer, ``status`` the HTTP status (None when no answer came), ``message`` what went
wrong (the upstream's own error message when it gave one), with the connection's secrets masked.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from app.errors import Conflict, StepError
from app.sdk.auth import select_auth
from app.sdk.connector import Connector
from app.sdk.errors import raise_for_response
from app.sdk.http import ConnectorHTTP
from app.sdk.redaction import mask, secret_values


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """The outcome of a connection test."""

    ok: bool
    status: int | None
    message: str


def check_testable(connector: Connector, kind: str) -> tuple[str, str]:
    """The connector's ``(METHOD, path)`` test request; 409 when a ``kind`` connection cannot be tested."""
    verified = next((item.verified_by_request for item in connector.auth if item.kind == kind), True)
    if connector.test_request is None or not verified:
        raise Conflict(
            f"connector {connector.key} has no test request for {kind} connections: use the connection "
            "in a step to try it",
            details={"connector": connector.key, "kind": kind},
        )
    return connector.test_request


async def check_connection(
    connector: Connector,
    credentials: Mapping[str, Any],
    http_client: httpx.AsyncClient,
    *,
    max_response_bytes: int | None = None,
) -> CheckOutcome:
    """Send the connector's test request with ``credentials``; never raises for an upstream failure."""
    method, path = check_testable(connector, str(credentials.get("kind", "")))
    kind, auth = select_auth(connector.auth, credentials, connector=connector.key)
    public = [f.name for f in kind.fields if not f.secret]
    if connector.base_url:
        public += [name for _, name, _, _ in string.Formatter().parse(connector.base_url) if name]
    secrets = secret_values(credentials, public=public)
    try:
        http = ConnectorHTTP(
            http_client,
            base_url=connector.base_url_for(credentials),
            auth=auth,
            max_response_bytes=max_response_bytes,
            headers=dict(connector.headers),
            secrets=secrets,
        )
        response = await http.request(method, path)
        raise_for_response(response)
    except StepError as exc:
        status = exc.details.get("status") if isinstance(exc.details, dict) else None
        return CheckOutcome(
            ok=False, status=status if isinstance(status, int) else None, message=mask(exc.message, secrets)
        )
    return CheckOutcome(
        ok=True,
        status=response.status_code,
        message=f"{method} {path} answered {response.status_code} {response.reason_phrase}".rstrip(),
    )
