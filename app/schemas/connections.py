"""API models of connections: stored credentials of a connector (write-only) and their OAuth2 state."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from app.schemas.base import APIModel
from app.security.connection_fields import MAX_VALUE_CHARS
from app.storage.models_connections import CONNECTION_NAME_MAX_LENGTH

CONNECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

CredentialValue = Annotated[str, Field(max_length=MAX_VALUE_CHARS)]


class ConnectionCreate(APIModel):
    """A new connection: which connector, which of its auth kinds, and the credentials of that kind."""

    name: str = Field(
        min_length=1,
        max_length=CONNECTION_NAME_MAX_LENGTH,
        pattern=CONNECTION_NAME_PATTERN,
        description="How steps name it (`connection: team-slack`): letters, digits, `.`, `_`, `-`",
    )
    connector: str = Field(min_length=1, max_length=64, description="The connector key, e.g. `github`")
    kind: str = Field(
        min_length=1,
        max_length=32,
        description="One of the connector's auth kinds: `api_key`, `bearer`, `basic`, `oauth2`, ...",
    )
    credentials: dict[str, CredentialValue] = Field(
        default_factory=dict,
        max_length=50,
        description=(
            'The fields of that kind (`GET /v1/connectors/{key}` lists them), e.g. `{"token": "..."}`. '
            "For `oauth2`: optional `client_id`, `client_secret`, `token_endpoint_auth_method` (else the "
            "server's `MASHPIPE_OAUTH_<CONNECTOR>_CLIENT_ID/SECRET`). Write-only: never returned."
        ),
    )
    scopes: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None,
        max_length=50,
        description="oauth2 only: the scopes to ask for (default: the connector's declared scopes)",
    )


class ConnectionRead(APIModel):
    """A connection as listed: never its credentials."""

    name: str
    connector: str
    kind: str
    status: Literal["active", "pending", "needs_reauth"] = Field(
        description="`pending`: waiting for the OAuth2 callback; `needs_reauth`: authorize it again"
    )
    message: str | None = Field(default=None, description="Why the connection is not active, when it is not")
    token_expires_at: datetime | None = Field(
        default=None, description="oauth2: when the current access token expires (it is refreshed before)"
    )
    created_at: datetime
    updated_at: datetime


class ConnectionCreated(ConnectionRead):
    """A created connection; for `oauth2`, the URL the user opens to authorize it."""

    authorize_url: str | None = Field(
        default=None, description="oauth2: open this URL to authorize (valid until `authorize_expires_at`)"
    )
    authorize_expires_at: datetime | None = None


class ConnectionAuthorization(APIModel):
    """A new authorization of an oauth2 connection."""

    name: str
    authorize_url: str = Field(
        description="Open this URL to authorize; the provider redirects to the callback"
    )
    authorize_expires_at: datetime


class ConnectionTestResult(APIModel):
    """The outcome of the connector's test request sent with the connection."""

    ok: bool = Field(description="Whether the upstream accepted the credentials (a 2xx answer)")
    status: int | None = Field(description="The upstream's HTTP status; null when no answer came")
    message: str
