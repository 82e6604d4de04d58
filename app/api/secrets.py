"""`/v1/secrets`: the account's secrets. Write-only values, listed by name; pipelines read them as
``${{ secrets.NAME }}``.

Values are encrypted before they are stored (:mod:`app.security.crypto`) and no endpoint returns
them; a run decrypts the ones its pipeline references when it starts, and masks them (``***``) in
everything it records.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.deps import AccountDep, SessionDep, StateDep
from app.api.responses import errors
from app.errors import NotFound
from app.schemas.base import Page
from app.schemas.secrets import SecretRead, SecretWrite
from app.storage.models_secrets import SECRET_NAME_MAX_LENGTH, Secret
from app.storage.repositories.secrets import SecretRepo

router = APIRouter(tags=["secrets"])

SecretName = Annotated[
    str,
    Path(
        description="The secret's name: upper-case letters, digits and `_`, not starting with a digit",
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        max_length=SECRET_NAME_MAX_LENGTH,
    ),
]


def secret_read(secret: Secret) -> SecretRead:
    return SecretRead(name=secret.name, created_at=secret.created_at, updated_at=secret.updated_at)


@router.put(
    "/secrets/{name}",
    operation_id="putSecret",
    summary="Create or replace a secret",
    response_model=SecretRead,
    responses={
        **errors(400, 401, 409, 413, 422, 429),
        201: {"model": SecretRead, "description": "The secret was created"},
    },
)
async def put_secret(
    name: SecretName,
    body: SecretWrite,
    account: AccountDep,
    session: SessionDep,
    state: StateDep,
    response: Response,
) -> SecretRead:
    """Store the value (encrypted) under `name`: 201 when the secret is new, 200 when it replaces the
    value. The value is never returned by any endpoint."""
    secret, created = await state.secrets.put(session, account.id, name, body.value)
    await session.commit()
    if created:
        response.status_code = status.HTTP_201_CREATED
    return secret_read(secret)


@router.get(
    "/secrets",
    operation_id="listSecrets",
    summary="List secrets",
    response_model=Page[SecretRead],
    responses=errors(401, 429),
)
async def list_secrets(account: AccountDep, session: SessionDep) -> Page[SecretRead]:
    """The account's secrets by name, with when each was created and last replaced. Never values."""
    secrets = await SecretRepo(session).list(account.id)
    return Page[SecretRead](items=[secret_read(s) for s in secrets], total=len(secrets), next_cursor=None)


@router.delete(
    "/secrets/{name}",
    operation_id="deleteSecret",
    summary="Delete a secret",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 404, 422, 429),
)
async def delete_secret(name: SecretName, account: AccountDep, session: SessionDep) -> Response:
    """Delete the secret. Saved pipelines that reference it keep their revisions; their runs then see
    no such secret (an expression reading it fails), and saving them again reports the missing name."""
    if not await SecretRepo(session).delete(account.id, name):
        raise NotFound(f"no secret named {name!r}")
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
