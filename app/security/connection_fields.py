"""Checks the credentials of a new connection against what its connector declares.

A connector declares the auth kinds it accepts (:mod:`app.sdk.auth`), each with its credential
fields. A connection names one kind and gives exactly those fields (all strings), plus the values
that fill the connector's base URL placeholders (``https://{subdomain}.example.com``) and its
``base_url_field`` override when it has one. An ``oauth2`` connection instead gives the OAuth client
registration (``client_id``, ``client_secret``, ``token_endpoint_auth_method``; all optional when the
server configures the client) and the tokens come from the authorization flow.

Every problem is a 422 listing each field: unknown kind, missing or empty field, unknown field, a
value that the auth kind itself refuses (a webhook URL on another host...).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from app.errors import StepError, Unprocessable
from app.sdk.auth import AuthKind, OAuth2
from app.sdk.connector import Connector
from app.security.oauth import CLIENT_FIELDS

MAX_VALUE_CHARS = 8192
"""The longest credential value accepted."""


def declared_kind(connector: Connector, kind: str) -> AuthKind:
    """The auth kind ``kind`` of ``connector``; 422 when it does not accept that kind."""
    accepted = [item.kind for item in connector.auth if item.kind != "none"]
    for item in connector.auth:
        if item.kind == kind and kind != "none":
            return item
    if not accepted:
        raise Unprocessable(
            f"connector {connector.key} needs no connection: its API takes no credentials",
            details=[{"path": "connector", "message": "no auth declared"}],
        )
    raise Unprocessable(
        f"connector {connector.key} does not accept {kind[:40]!r} connections "
        f"(accepted: {', '.join(accepted)})",
        details=[{"path": "kind", "message": f"one of {', '.join(accepted)}"}],
    )


def url_fields(connector: Connector) -> tuple[list[str], str | None]:
    """The base URL placeholders (required) and the base URL override field (optional) of a connector."""
    placeholders = [
        name for _, name, _, _ in string.Formatter().parse(connector.base_url or "") if name is not None
    ]
    return placeholders, connector.base_url_field


def oauth2_of(connector: Connector) -> OAuth2 | None:
    """The connector's ``OAuth2`` declaration, if it accepts oauth2 connections."""
    for item in connector.auth:
        if isinstance(item, OAuth2):
            return item
    return None


def check_credentials(connector: Connector, kind: str, credentials: Mapping[str, Any]) -> dict[str, str]:
    """The credentials of a new ``kind`` connection to ``connector``, checked; 422 listing every problem."""
    declared = declared_kind(connector, kind)
    placeholders, override = url_fields(connector)
    if isinstance(declared, OAuth2):
        required: list[str] = []
        optional = list(CLIENT_FIELDS)
    else:
        required = [f.name for f in declared.fields if f.required]
        optional = [f.name for f in declared.fields if not f.required]
    required += [name for name in placeholders if name not in required]
    if override:
        optional.append(override)
    allowed = set(required) | set(optional)
    problems: list[dict[str, str]] = []
    values: dict[str, str] = {}
    for name, value in credentials.items():
        if name == "kind":
            continue
        if name not in allowed:
            problems.append({"path": f"credentials.{name[:60]}", "message": "unknown field"})
        elif not isinstance(value, str):
            problems.append({"path": f"credentials.{name}", "message": "must be a string"})
        elif len(value) > MAX_VALUE_CHARS:
            problems.append(
                {"path": f"credentials.{name}", "message": f"longer than {MAX_VALUE_CHARS} characters"}
            )
        elif value.strip():
            values[name] = value.strip() if name not in _VERBATIM else value
    for name in required:
        if name not in values and not any(p["path"] == f"credentials.{name}" for p in problems):
            problems.append({"path": f"credentials.{name}", "message": "required"})
    if problems:
        summary = "; ".join(f"{p['path']}: {p['message']}" for p in problems[:6])
        fields = ", ".join(required + optional) or "none"
        raise Unprocessable(
            f"the credentials do not fit a {kind} connection to {connector.key} ({summary}); "
            f"fields: {fields}",
            details=problems,
        )
    _check_with_connector(connector, declared, {"kind": kind, **values})
    return values


_VERBATIM = frozenset({"password", "client_secret"})
"""Fields kept exactly as given (a password may start or end with a space)."""


def _check_with_connector(connector: Connector, declared: AuthKind, credentials: dict[str, str]) -> None:
    """Let the connector refuse values it cannot use (a path token with a slash, a foreign webhook host)."""
    try:
        connector.base_url_for(credentials)
        if not isinstance(declared, OAuth2):
            declared.build(credentials)
    except StepError as exc:
        raise Unprocessable(exc.message, details=[{"path": "credentials", "message": exc.message}]) from None
