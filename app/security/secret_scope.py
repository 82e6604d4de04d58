"""Which secrets are in play in the current task: set by the connector SDK around a call with a connection's
secrets and by the runtime around a run with secrets (``app.sdk.redaction.secrets_in_scope``).

Log lines mask them, and the process-wide caches of the request path (parsed URLs, wire headers,
egress verdicts of whole URLs) remember nothing while :func:`secrets_active` is true: a URL or a header
may hold a secret, and none outlives its call there. The variable lives in the lowest layer
(``app.security``) so the transport can read it without importing the SDK.
"""

from __future__ import annotations

from contextvars import ContextVar

SECRETS_IN_SCOPE: ContextVar[tuple[str, ...]] = ContextVar("mashpipe_sdk_secrets", default=())
"""The secret values in scope (longest first within each call's group)."""


def secrets_active() -> bool:
    """Whether any secret is in scope in the current task."""
    return bool(SECRETS_IN_SCOPE.get())
