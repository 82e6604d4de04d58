"""The ``mashpipe accounts list`` and ``mashpipe keys ...`` commands (API keys and encryption keys).

::

    mashpipe accounts list                                   every account: name, id, created, keys
    mashpipe keys create ACCOUNT [--name N] [--expires-in-days D]
                                                             a new API key, printed once
    mashpipe keys list ACCOUNT                               id, prefix, name, status, dates
    mashpipe keys revoke ACCOUNT KEY                         KEY: the key's id or its prefix
    mashpipe keys rotate-secrets                             re-encrypt every stored secret (and
                                                             connection credential) under the newest
                                                             key of MASHPIPE_SECRET_KEYS

Each command works on the database of ``MASHPIPE_DATABASE_URL`` directly (migrating it first), so it
also works while no server runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer

from app.errors import MashpipeError
from app.settings import Settings

T = TypeVar("T")

keys_cli = typer.Typer(help="Manage API keys and the encryption of stored secrets.", no_args_is_help=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        raise _fail(f"invalid settings: {exc}", 2) from None


def _with_db(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(db)`` on the migrated database; Mashpipe errors become a clean exit 1."""
    from app.storage.db import Database

    async def main() -> T:
        db = Database(settings.database_url)
        try:
            await db.upgrade()
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except MashpipeError as exc:
        raise _fail(exc.message) from None


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


async def _account_id(session: Any, name: str) -> str:
    from app.storage.repositories import AccountRepo

    account = await AccountRepo(session).get_by_name(name)
    if account is None:
        raise MashpipeError(f"no account named {name!r} (see `mashpipe accounts list`)")
    return account.id


# -- accounts list ----------------------------------------------------------------------------------


def accounts_list() -> None:
    """List every account: name, id, creation date and number of active API keys."""
    from sqlalchemy import func, select

    from app.storage.models import Account, ApiKey

    settings = _settings()

    async def work(db: Any) -> list[tuple[Account, int]]:
        async with db.session() as session:
            active = (
                select(ApiKey.account_id, func.count().label("keys"))
                .where(ApiKey.revoked_at.is_(None))
                .group_by(ApiKey.account_id)
                .subquery()
            )
            statement = (
                select(Account, func.coalesce(active.c["keys"], 0))
                .outerjoin(active, active.c.account_id == Account.id)
                .order_by(Account.name)
            )
            return [(row[0], int(row[1])) for row in await session.execute(statement)]

    rows = _with_db(settings, work)
    if not rows:
        typer.echo("no account yet: create one with `mashpipe accounts create NAME`")
        return
    typer.echo(f"{'NAME':<24} {'ID':<32} {'CREATED':<20} KEYS")
    for account, keys in rows:
        typer.echo(f"{account.name:<24} {account.id:<32} {_when(account.created_at):<20} {keys}")


# -- keys -------------------------------------------------------------------------------------------


@keys_cli.command("create")
def keys_create(
    account: Annotated[str, typer.Argument(help="The account's name")],
    name: Annotated[str, typer.Option(help="What the key is for")] = "cli",
    expires_in_days: Annotated[
        int | None, typer.Option(help="Days until the key expires (default: never)", min=1)
    ] = None,
) -> None:
    """Create an API key for ACCOUNT and print it (shown only this once)."""
    from app.security.key_admin import issue_key
    from app.security.keys import load_secret_key

    settings = _settings()

    async def work(db: Any) -> str:
        async with db.session() as session:
            account_id = await _account_id(session, account)
            _, key = await issue_key(
                session, load_secret_key(settings), account_id, name, expires_in_days=expires_in_days
            )
            await session.commit()
            return key

    key = _with_db(settings, work)
    typer.echo(f"created API key {name!r} of account {account!r}; the key (shown only this once):", err=True)
    typer.echo(key)


@keys_cli.command("list")
def keys_list(account: Annotated[str, typer.Argument(help="The account's name")]) -> None:
    """List the API keys of ACCOUNT (never the keys themselves)."""
    from app.security.key_admin import key_status
    from app.storage.base import utcnow
    from app.storage.models import ApiKey
    from app.storage.repositories import ApiKeyRepo

    settings = _settings()

    async def work(db: Any) -> list[ApiKey]:
        async with db.session() as session:
            return await ApiKeyRepo(session).list(await _account_id(session, account))

    keys = _with_db(settings, work)
    now = utcnow()
    typer.echo(
        f"{'ID':<32} {'PREFIX':<10} {'STATUS':<8} {'CREATED':<20} {'LAST USED':<20} {'EXPIRES':<20} NAME"
    )
    for key in keys:
        typer.echo(
            f"{key.id:<32} {key.prefix:<10} {key_status(key, now):<8} {_when(key.created_at):<20} "
            f"{_when(key.last_used_at):<20} {_when(key.expires_at):<20} {key.name}"
        )


@keys_cli.command("revoke")
def keys_revoke(
    account: Annotated[str, typer.Argument(help="The account's name")],
    key: Annotated[str, typer.Argument(help="The key's id, or its prefix (as `keys list` shows them)")],
) -> None:
    """Revoke an API key of ACCOUNT: requests with it are refused (401) from now on."""
    from app.storage.base import utcnow
    from app.storage.repositories import ApiKeyRepo

    settings = _settings()

    async def work(db: Any) -> str:
        async with db.session() as session:
            repo = ApiKeyRepo(session)
            keys = await repo.list(await _account_id(session, account))
            matches = [k for k in keys if key in (k.id, k.prefix)]
            if not matches:
                raise MashpipeError(f"account {account!r} has no key with id or prefix {key!r}")
            if len(matches) > 1:
                raise MashpipeError(f"several keys have the prefix {key!r}: give the key's id")
            await repo.revoke(matches[0].account_id, matches[0].id, utcnow())
            await session.commit()
            return matches[0].id

    revoked = _with_db(settings, work)
    typer.echo(f"revoked key {revoked}")


@keys_cli.command("rotate-secrets")
def keys_rotate_secrets() -> None:
    """Re-encrypt every stored secret and connection credential under the newest encryption key (the
    first of MASHPIPE_SECRET_KEYS). Idempotent: values already under that key are left alone."""
    from app.security.crypto import Encryptor
    from app.security.rotation import RotationCount, rotate_all

    settings = _settings()
    try:
        encryptor = Encryptor.from_settings(settings)
    except MashpipeError as exc:
        raise _fail(exc.message, 2) from None

    async def work(db: Any) -> list[RotationCount]:
        return await rotate_all(db, encryptor)

    counts = _with_db(settings, work)
    for count in counts:
        typer.echo(
            f"{count.kind}: {count.rotated} re-encrypted, {count.total - count.rotated} already current"
        )
    if encryptor.key_count > 1:
        typer.echo(
            "every value is now under the newest key: the older keys of MASHPIPE_SECRET_KEYS may be removed",
            err=True,
        )
