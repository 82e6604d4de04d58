"""`mashpipe accounts list`, `mashpipe keys create|list|revoke|rotate-secrets` on a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.security.crypto import DecryptionFailed
from app.security.secret_store import SecretStore
from app.settings import Settings
from app.storage.db import Database
from app.storage.repositories import AccountRepo

HASH_KEY = "cli-hash-and-first-encryption-key-0123"
NEW_KEY = "a-newer-encryption-key-456789abcdef"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    database = tmp_path / "cli" / "mashpipe.db"
    monkeypatch.setenv("MASHPIPE_DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    monkeypatch.setenv("MASHPIPE_SECRET_KEY", HASH_KEY)
    for name in ("MASHPIPE_SECRET_KEYS", "MASHPIPE_SECRET_KEYS_FILE", "MASHPIPE_BOOTSTRAP_KEY"):
        monkeypatch.delenv(name, raising=False)
    return database


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str, code: int = 0):
    result = runner.invoke(cli, list(args))
    assert result.exit_code == code, (args, result.output, result.stderr if result.stderr_bytes else "")
    return result


async def _with_store(work):
    settings = Settings()
    from app.security.crypto import Encryptor

    db = Database(settings.database_url)
    try:
        await db.upgrade()
        store = SecretStore(Encryptor.from_settings(settings))
        async with db.session() as session:
            account = await AccountRepo(session).get_by_name("acme")
            assert account is not None
            result = await work(store, session, account.id)
            await session.commit()
            return result
    finally:
        await db.dispose()


def put_secrets(values: dict[str, str]) -> None:
    async def work(store, session, account_id):
        for name, value in values.items():
            await store.put(session, account_id, name, value)

    asyncio.run(_with_store(work))


def read_secrets(names: set[str]) -> dict[str, str]:
    async def work(store, session, account_id):
        return await store.resolve(session, account_id, names)

    return asyncio.run(_with_store(work))


def test_accounts_and_keys_commands(runner, env):
    first = invoke(runner, "accounts", "create", "acme").stdout.strip()
    assert first.startswith("mp_")
    listed = invoke(runner, "accounts", "list").stdout
    assert "acme" in listed
    assert listed.strip().splitlines()[-1].endswith(" 1")  # one active key

    created = invoke(
        runner, "keys", "create", "acme", "--name", "ci", "--expires-in-days", "7"
    ).stdout.strip()
    assert created.startswith("mp_")
    assert created != first
    keys = invoke(runner, "keys", "list", "acme").stdout
    assert created not in keys
    assert first not in keys
    assert created[:10] in keys
    ci_line = next(line for line in keys.splitlines() if line.endswith(" ci"))
    assert " active " in ci_line
    assert ci_line.split()[1] == created[:10]

    invoke(runner, "keys", "revoke", "acme", created[:10])
    keys = invoke(runner, "keys", "list", "acme").stdout
    assert " revoked " in next(line for line in keys.splitlines() if line.endswith(" ci"))
    assert invoke(runner, "accounts", "list").stdout.strip().splitlines()[-1].endswith(" 1")


def test_key_commands_report_bad_input_cleanly(runner, env):
    assert "no account yet" in invoke(runner, "accounts", "list").stdout
    invoke(runner, "accounts", "create", "acme")
    missing = invoke(runner, "keys", "list", "nobody", code=1)
    assert "no account named 'nobody'" in missing.stderr
    unknown = invoke(runner, "keys", "revoke", "acme", "mp_nothere", code=1)
    assert "no key with id or prefix" in unknown.stderr
    assert invoke(runner, "keys", "create", "acme", "--expires-in-days", "0", code=2).exit_code == 2


def test_rotate_secrets_moves_every_secret_to_the_newest_key(runner, env, monkeypatch):
    invoke(runner, "accounts", "create", "acme")
    put_secrets({"API_TOKEN": "tok-1234", "OTHER": "other-5678"})

    monkeypatch.setenv("MASHPIPE_SECRET_KEYS", f"{NEW_KEY},{HASH_KEY}")
    rotated = invoke(runner, "keys", "rotate-secrets")
    assert "secrets: 2 re-encrypted, 0 already current" in rotated.stdout
    assert "may be removed" in rotated.stderr
    again = invoke(runner, "keys", "rotate-secrets")
    assert "secrets: 0 re-encrypted, 2 already current" in again.stdout

    monkeypatch.setenv("MASHPIPE_SECRET_KEYS", NEW_KEY)  # the old key is retired
    assert read_secrets({"API_TOKEN", "OTHER"}) == {"API_TOKEN": "tok-1234", "OTHER": "other-5678"}
    assert invoke(runner, "keys", "list", "acme").exit_code == 0  # API keys do not depend on it

    monkeypatch.setenv("MASHPIPE_SECRET_KEYS", HASH_KEY)  # only the old key: nothing decrypts
    with pytest.raises(DecryptionFailed, match="not in MASHPIPE_SECRET_KEYS"):
        read_secrets({"API_TOKEN"})


def test_rotate_secrets_refuses_weak_keys(runner, env, monkeypatch):
    monkeypatch.setenv("MASHPIPE_SECRET_KEYS", "short")
    refused = invoke(runner, "keys", "rotate-secrets", code=2)
    assert "at least 16 characters" in refused.stderr


def test_rotate_secrets_stops_on_a_value_no_key_can_read(runner, env, monkeypatch):
    invoke(runner, "accounts", "create", "acme")
    put_secrets({"API_TOKEN": "tok-1234"})
    monkeypatch.setenv("MASHPIPE_SECRET_KEYS", NEW_KEY)  # forgot to keep the old key
    failed = invoke(runner, "keys", "rotate-secrets", code=1)
    assert "cannot be decrypted" in failed.stderr
    monkeypatch.setenv("MASHPIPE_SECRET_KEYS", HASH_KEY)
    assert read_secrets({"API_TOKEN"}) == {"API_TOKEN": "tok-1234"}  # nothing was damaged
