"""`/v1/connections`: stored credentials of connectors, and `/v1/oauth/callback` for OAuth2 ones.

Credentials are checked against the connector's declared auth kind, encrypted, and never returned.
An `oauth2` connection is created `pending` with the provider's authorize URL; the provider sends the
user back to `GET /v1/oauth/callback` (no API key: the one-use `state` identifies the authorization),
which stores the tokens. Steps name a connection with `connection: NAME`; see :mod:`app.runtime.connections`
for the refresh of tokens at run time and :mod:`app.security.connection_store` for what is stored.
"""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Path, Query, Request, Response, status

from app.api.deps import AccountDep, SessionDep, SettingsDep, StateDep
from app.api.responses import errors
from app.errors import MashpipeError, NotFound, StepError
from app.runtime.connection_check import check_connection, check_testable
from app.schemas.base import Page
from app.schemas.connections import (
    CONNECTION_NAME_PATTERN,
    ConnectionAuthorization,
    ConnectionCreate,
    ConnectionCreated,
    ConnectionRead,
    ConnectionTestResult,
)
from app.settings import Settings
from app.storage.models_connections import CONNECTION_NAME_MAX_LENGTH, ConnectionRow
from app.storage.repositories.connections import ConnectionRepo

router = APIRouter(tags=["connections"])

ConnectionName = Annotated[
    str,
    Path(
        description="The connection's name",
        pattern=CONNECTION_NAME_PATTERN,
        max_length=CONNECTION_NAME_MAX_LENGTH,
    ),
]

CALLBACK_PATH = "/v1/oauth/callback"


def connection_read(row: ConnectionRow) -> ConnectionRead:
    return ConnectionRead(
        name=row.name,
        connector=row.connector,
        kind=row.kind,
        status=row.status,  # one of the three ConnectionStatus values
        message=row.status_message,
        token_expires_at=row.token_expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def redirect_uri(settings: Settings, request: Request) -> str:
    """Where the provider sends the user back: ``<public_url>/v1/oauth/callback``, else this server's URL."""
    if settings.public_url:
        base = httpx.URL(settings.public_url.strip())
        if base.scheme not in ("http", "https") or not base.host:
            raise MashpipeError(
                "MASHPIPE_PUBLIC_URL must be an absolute http(s) URL such as https://mashpipe.example.com"
            )
        return str(base).rstrip("/") + CALLBACK_PATH
    return str(request.url_for("oauth_callback"))


@router.post(
    "/connections",
    operation_id="createConnection",
    summary="Create a connection",
    status_code=status.HTTP_201_CREATED,
    response_model=ConnectionCreated,
    responses=errors(400, 401, 409, 413, 422, 429),
)
async def create_connection(
    body: ConnectionCreate,
    account: AccountDep,
    session: SessionDep,
    state: StateDep,
    settings: SettingsDep,
    request: Request,
) -> ConnectionCreated:
    """Store credentials for a connector (checked against its declared auth kind, encrypted, never
    returned). For `oauth2`, the connection is `pending` and the answer has the `authorize_url` to open:
    the provider then redirects to `/v1/oauth/callback`, which stores the tokens."""
    row, authorization = await state.connections.store.create(
        session,
        account.id,
        name=body.name,
        connector_key=body.connector,
        kind=body.kind,
        credentials=body.credentials,
        scopes=body.scopes,
        redirect_uri=redirect_uri(settings, request),
    )
    await session.commit()
    read = connection_read(row)
    return ConnectionCreated(
        **read.model_dump(),
        authorize_url=authorization.url if authorization else None,
        authorize_expires_at=authorization.expires_at if authorization else None,
    )


@router.get(
    "/connections",
    operation_id="listConnections",
    summary="List connections",
    response_model=Page[ConnectionRead],
    responses=errors(401, 429),
)
async def list_connections(account: AccountDep, session: SessionDep) -> Page[ConnectionRead]:
    """The account's connections by name: connector, kind, status and token expiry. Never credentials."""
    rows = await ConnectionRepo(session).list(account.id)
    return Page[ConnectionRead](items=[connection_read(r) for r in rows], total=len(rows), next_cursor=None)


async def _get(session: SessionDep, account_id: str, name: str) -> ConnectionRow:
    row = await ConnectionRepo(session).get(account_id, name)
    if row is None:
        raise NotFound(f"no connection named {name!r}")
    return row


@router.get(
    "/connections/{name}",
    operation_id="getConnection",
    summary="Get a connection",
    response_model=ConnectionRead,
    responses=errors(401, 404, 422, 429),
)
async def get_connection(name: ConnectionName, account: AccountDep, session: SessionDep) -> ConnectionRead:
    """One connection: connector, kind, status (`active`, `pending`, `needs_reauth`) and token expiry."""
    return connection_read(await _get(session, account.id, name))


@router.delete(
    "/connections/{name}",
    operation_id="deleteConnection",
    summary="Delete a connection",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 404, 422, 429),
)
async def delete_connection(name: ConnectionName, account: AccountDep, session: SessionDep) -> Response:
    """Delete the connection and its credentials. Steps naming it then fail with `no connection named`."""
    if not await ConnectionRepo(session).delete(account.id, name):
        raise NotFound(f"no connection named {name!r}")
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/connections/{name}/authorize",
    operation_id="authorizeConnection",
    summary="Authorize an oauth2 connection again",
    response_model=ConnectionAuthorization,
    responses=errors(401, 404, 422, 429),
)
async def authorize_connection(
    name: ConnectionName,
    account: AccountDep,
    session: SessionDep,
    state: StateDep,
    settings: SettingsDep,
    request: Request,
) -> ConnectionAuthorization:
    """A new authorize URL for an `oauth2` connection (after `needs_reauth`, or a lost or expired URL).
    The connection keeps its current tokens until the callback stores new ones."""
    await _get(session, account.id, name)
    _, authorization = await state.connections.store.authorize(
        session, account.id, name, redirect_uri=redirect_uri(settings, request)
    )
    await session.commit()
    return ConnectionAuthorization(
        name=name, authorize_url=authorization.url, authorize_expires_at=authorization.expires_at
    )


@router.post(
    "/connections/{name}/test",
    operation_id="testConnection",
    summary="Test a connection",
    response_model=ConnectionTestResult,
    responses=errors(401, 404, 409, 422, 429),
)
async def test_connection(
    name: ConnectionName, account: AccountDep, session: SessionDep, state: StateDep, settings: SettingsDep
) -> ConnectionTestResult:
    """Send the connector's test request with the connection (refreshing an expiring OAuth2 token
    first): `ok` when the upstream accepts it. 409 when the connector has no test request."""
    row = await _get(session, account.id, name)
    connector = state.registry.get(row.connector) if state.registry.has_connector(row.connector) else None
    if connector is None:
        return ConnectionTestResult(
            ok=False, status=None, message=f"connector {row.connector} is not installed"
        )
    check_testable(connector, row.kind)
    await session.commit()  # end the read transaction: a token refresh writes the row
    try:
        credentials = await state.connections.resolve(account.id, name)
    except StepError as exc:
        return ConnectionTestResult(ok=False, status=None, message=exc.message)
    if credentials is None:
        raise NotFound(f"no connection named {name!r}")
    outcome = await check_connection(
        connector, credentials, state.http, max_response_bytes=settings.response_max_bytes
    )
    return ConnectionTestResult(ok=outcome.ok, status=outcome.status, message=outcome.message)


@router.get(
    "/oauth/callback",
    operation_id="oauthCallback",
    summary="OAuth2 callback",
    response_model=ConnectionRead,
    responses=errors(400, 422, 429),
)
async def oauth_callback(
    session: SessionDep,
    state: StateDep,
    oauth_state: Annotated[str, Query(alias="state", min_length=1, max_length=512)],
    code: Annotated[str | None, Query(max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    error_description: Annotated[str | None, Query(max_length=1024)] = None,
) -> ConnectionRead:
    """Where the OAuth2 provider sends the user back (no API key: the one-use `state` identifies the
    authorization, 10 minutes). Exchanges the `code` (with the PKCE verifier) and stores the tokens:
    the connection becomes `active`. 400 for an unknown, used or expired state or a refused code."""
    try:
        row = await state.connections.store.complete(
            session, state=oauth_state, code=code, error=error, error_description=error_description
        )
    except MashpipeError:
        await session.commit()  # the state is used up even when the authorization failed
        raise
    await session.commit()
    return connection_read(row)
