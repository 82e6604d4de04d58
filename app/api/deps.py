"""Dependency shortcuts for the routers, as ``Annotated`` aliases.

Every dependency is ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, a
thread hop per request that costs more than the dependency itself.

``StateDep`` (the process :class:`~app.runtime.state.State`), ``SettingsDep``, ``SessionDep`` (one
session per request; the router commits), ``AccountDep`` (the account of the Bearer API key, else 401
with ``WWW-Authenticate: Bearer``), ``RegistryDep`` and ``RunServiceDep``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import MashpipeError, Unauthorized
from app.registry import Registry
from app.runtime.service import RunService
from app.runtime.state import State
from app.security.apikeys import hash_api_key, looks_like_api_key
from app.settings import Settings
from app.storage.models import Account
from app.storage.repositories import ApiKeyRepo
from app.storage.repositories.accounts import TOUCH_INTERVAL

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key of the account: `Authorization: Bearer mp_...`",
)


async def get_state(request: Request) -> State:
    """The process state the lifespan built."""
    state = getattr(request.app.state, "mashpipe", None)
    if not isinstance(state, State):
        raise MashpipeError("the server is not started (lifespan not run)")
    return state


StateDep = Annotated[State, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


async def get_registry(state: StateDep) -> Registry:
    return state.registry


async def get_run_service(state: StateDep) -> RunService:
    return state.runs


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """One session per request; routers commit what they change, anything else is rolled back."""
    async with state.db.session() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
RunServiceDep = Annotated[RunService, Depends(get_run_service)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_account(
    state: StateDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Account:
    """The account owning the Bearer API key; 401 when it is missing, unknown, revoked or expired."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized("an API key is required: send `Authorization: Bearer <key>`")
    key = credentials.credentials
    if not looks_like_api_key(key):
        raise Unauthorized("invalid, revoked or expired API key")
    now = datetime.now(UTC)
    key_hash = hash_api_key(key, state.secret_key)
    await state.rate_limits.hit_key(key_hash)  # per key, before any SQL: 429 past `api_rate_limit`
    found = await ApiKeyRepo(session).find_active_by_hash(key_hash, now)
    if found is None:
        raise Unauthorized("invalid, revoked or expired API key")
    api_key, account = found
    if api_key.last_used_at is None or now - api_key.last_used_at >= TOUCH_INTERVAL:
        await ApiKeyRepo(session).touch(api_key.id, now)  # at most once a minute: no write per request
    # End the transaction now: its pooled connection goes back to the pool instead of staying checked
    # out for the whole request (a `wait: true` run request would otherwise hold one while it waits).
    await session.commit()
    return account


AccountDep = Annotated[Account, Depends(get_account)]
