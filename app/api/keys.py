"""`/v1/keys`: the account's API keys. Create one (shown once), list them, revoke one.

A revoked or expired key is refused (401) from the next request on; revoking the key making the
request is allowed (it is the way to retire a leaked key).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.deps import AccountDep, SessionDep, StateDep
from app.api.responses import errors
from app.errors import NotFound
from app.schemas.base import Page
from app.schemas.keys import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from app.security.key_admin import issue_key, key_status
from app.storage.base import utcnow
from app.storage.models import ApiKey
from app.storage.repositories import ApiKeyRepo

router = APIRouter(tags=["keys"])

KeyId = Annotated[str, Path(description="The key's id (from the list), not the key", max_length=64)]


def key_read(key: ApiKey) -> ApiKeyRead:
    """A stored key as the API shows it."""
    return ApiKeyRead(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        status=key_status(key, utcnow()),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
    )


@router.post(
    "/keys",
    operation_id="createApiKey",
    summary="Create an API key",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=errors(400, 401, 413, 422, 429),
)
async def create_key(
    body: ApiKeyCreate, account: AccountDep, session: SessionDep, state: StateDep
) -> ApiKeyCreated:
    """A new key of the account. The answer holds the key itself, shown only this once: only its hash is
    kept. `expires_in_days` makes it stop working after that many days."""
    row, key = await issue_key(
        session, state.secret_key, account.id, body.name, expires_in_days=body.expires_in_days
    )
    await session.commit()
    return ApiKeyCreated(**key_read(row).model_dump(), key=key)


@router.get(
    "/keys",
    operation_id="listApiKeys",
    summary="List API keys",
    response_model=Page[ApiKeyRead],
    responses=errors(401, 429),
)
async def list_keys(account: AccountDep, session: SessionDep) -> Page[ApiKeyRead]:
    """Every key of the account (revoked and expired ones too), oldest first: prefix, name, status,
    creation, last use and expiry. Never the keys themselves."""
    keys = await ApiKeyRepo(session).list(account.id)
    return Page[ApiKeyRead](items=[key_read(k) for k in keys], total=len(keys), next_cursor=None)


@router.delete(
    "/keys/{key_id}",
    operation_id="revokeApiKey",
    summary="Revoke an API key",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 404, 422, 429),
)
async def revoke_key(key_id: KeyId, account: AccountDep, session: SessionDep) -> Response:
    """Revoke the key: every later request with it is a 401. Revoking a revoked key changes nothing."""
    if not await ApiKeyRepo(session).revoke(account.id, key_id, utcnow()):
        raise NotFound(f"no API key {key_id!r}")
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
