"""Keeping a connection's secret values out of log lines and error messages.

Some APIs carry secrets in the URL itself: a Telegram bot token in the path, a Slack or Discord
webhook URL, an API key in the query. ``httpx`` logs every request URL at INFO level, and error
messages name the URL they failed on. So:

* :class:`ConnectorHTTP <app.sdk.http.ConnectorHTTP>` sends each request inside
  :func:`secrets_in_scope`, and :func:`install_log_redaction` (run by ``build_http_client``) adds
  a filter to the ``httpx``/``httpcore`` loggers that masks the secrets in scope (a context variable,
  so concurrent requests of other connections are not affected);
* :func:`mask_error` masks them in a step error's message and details before it leaves an operation.

Values shorter than 4 characters are not masked (they would mangle every message), like ``StepLog``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from app.errors import MashpipeError
from app.security.secret_scope import SECRETS_IN_SCOPE, secrets_active

__all__ = [
    "MIN_SECRET_CHARS",
    "REDACTED",
    "REDACTED_LOGGERS",
    "SecretLogFilter",
    "install_log_redaction",
    "mask",
    "mask_error",
    "secret_values",
    "secrets_active",
    "secrets_in_scope",
]

REDACTED = "***"
MIN_SECRET_CHARS = 4
REDACTED_LOGGERS = ("httpx", "httpcore")

_in_scope = SECRETS_IN_SCOPE  # (in app.security, which the transport reads without importing the SDK)


def secret_values(credentials: Mapping[str, Any] | None, *, public: Iterable[str] = ()) -> tuple[str, ...]:
    """The string values of ``credentials`` worth masking, longest first (so a prefix never wins).

    ``public`` names fields that are not secret (a user name, the instance host of a base URL).
    """
    skip = {"kind", *public}
    found = {
        value
        for key, value in (credentials or {}).items()
        if key not in skip and isinstance(value, str) and len(value) >= MIN_SECRET_CHARS
    }
    return tuple(sorted(found, key=len, reverse=True))


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _mask_value(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return mask(value, secrets)
    if isinstance(value, dict):
        return {key: _mask_value(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask_value(item, secrets) for item in value)
    return value


def mask_error(error: MashpipeError, secrets: Iterable[str]) -> bool:
    """Mask ``secrets`` in ``error``'s message, args and details, in place; True when something changed."""
    values = tuple(secrets)
    if not values:
        return False
    message = mask(error.message, values)
    details = _mask_value(error.details, values)
    changed = message != error.message or details != error.details
    if changed:
        error.message = message
        error.details = details
        error.args = (message, *error.args[1:])
    return changed


@contextlib.contextmanager
def secrets_in_scope(secrets: Iterable[str]) -> Iterator[None]:
    """Within the block (and the tasks it spawns), the ``httpx`` log lines mask ``secrets``."""
    token = _in_scope.set(tuple(secrets) + _in_scope.get())
    try:
        yield
    finally:
        _in_scope.reset(token)


class SecretLogFilter(logging.Filter):
    """Masks the secrets in scope in a record's formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _in_scope.get()
        if secrets:
            try:
                message = record.getMessage()
            except Exception:  # a malformed record is the logging module's problem, not ours
                return True
            masked = mask(message, secrets)
            if masked != message:
                record.msg = masked
                record.args = None
        return True


_FILTER = SecretLogFilter()


def install_log_redaction() -> None:
    """Add the masking filter to the ``httpx`` and ``httpcore`` loggers (idempotent)."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
