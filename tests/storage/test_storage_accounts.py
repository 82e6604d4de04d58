"""AccountRepo and ApiKeyRepo on a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.errors import BadRequest, Conflict
from app.security.apikeys import generate_api_key, hash_api_key, key_prefix
from app.storage import AccountRepo, ApiKeyRepo

from .conftest import must

SECRET = b"a-test-secret-of-enough-length"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def test_account_create_get_count(session):
    repo = AccountRepo(session)
    assert await repo.count() == 0
    account = await repo.create("acme")
    await session.commit()
    assert len(account.id) == 32
    assert account.created_at.tzinfo is not None
    assert must(await repo.get(account.id)).name == "acme"
    assert must(await repo.get_by_name("acme")).id == account.id
    assert await repo.get("0" * 32) is None
    assert await repo.get_by_name("nobody") is None
    assert await repo.count() == 1


async def test_account_name_is_unique(session):
    repo = AccountRepo(session)
    await repo.create("acme")
    await session.commit()
    with pytest.raises(Conflict, match="already exists"):
        await repo.create("acme")


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
async def test_account_name_is_checked(session, name):
    with pytest.raises(BadRequest):
        await AccountRepo(session).create(name)


async def _key(session, account, *, name="ci", expires_at=None):
    plain = generate_api_key()
    key = await ApiKeyRepo(session).create(
        account.id, name, hash_api_key(plain, SECRET), key_prefix(plain), expires_at=expires_at
    )
    await session.commit()
    return plain, key


async def test_find_active_by_hash_returns_key_and_account(session, account):
    plain, key = await _key(session, account)
    found = await ApiKeyRepo(session).find_active_by_hash(hash_api_key(plain, SECRET), NOW)
    assert found is not None
    found_key, found_account = found
    assert found_key.id == key.id
    assert found_account.id == account.id
    assert found_key.prefix == plain[:10]
    assert await ApiKeyRepo(session).find_active_by_hash(hash_api_key("mp_wrong", SECRET), NOW) is None


async def test_expired_and_revoked_keys_are_not_active(session, account):
    repo = ApiKeyRepo(session)
    expiring, _ = await _key(session, account, name="short", expires_at=NOW + timedelta(hours=1))
    digest = hash_api_key(expiring, SECRET)
    assert await repo.find_active_by_hash(digest, NOW) is not None
    assert await repo.find_active_by_hash(digest, NOW + timedelta(hours=1)) is None
    assert await repo.find_active_by_hash(digest, NOW + timedelta(days=1)) is None

    revoked, key = await _key(session, account, name="gone")
    assert await repo.revoke(account.id, key.id, NOW) is True
    await session.commit()
    assert await repo.find_active_by_hash(hash_api_key(revoked, SECRET), NOW) is None


async def test_revoke_is_scoped_and_keeps_first_date(session, account, other_account):
    repo = ApiKeyRepo(session)
    _, key = await _key(session, account)
    assert await repo.revoke(other_account.id, key.id, NOW) is False
    assert await repo.revoke(account.id, "f" * 32, NOW) is False
    assert await repo.revoke(account.id, key.id, NOW) is True
    assert await repo.revoke(account.id, key.id, NOW + timedelta(days=1)) is True
    await session.commit()
    session.expunge_all()
    assert must(await repo.get(account.id, key.id)).revoked_at == NOW
    assert await repo.get(other_account.id, key.id) is None


async def test_touch_records_last_use_at_most_once_a_minute(session, account):
    repo = ApiKeyRepo(session)
    _, key = await _key(session, account)
    assert key.last_used_at is None
    await repo.touch(key.id, NOW)
    await session.commit()
    assert must(await repo.get(account.id, key.id)).last_used_at == NOW
    await repo.touch(key.id, NOW + timedelta(seconds=30))
    await session.commit()
    assert must(await repo.get(account.id, key.id)).last_used_at == NOW
    later = NOW + timedelta(minutes=5)
    await repo.touch(key.id, later)
    await session.commit()
    session.expunge_all()
    assert must(await repo.get(account.id, key.id)).last_used_at == later


async def test_list_keys_of_one_account(session, account, other_account):
    _, first = await _key(session, account, name="first")
    _, second = await _key(session, account, name="second")
    await ApiKeyRepo(session).revoke(account.id, second.id, NOW)
    _, foreign = await _key(session, other_account, name="foreign")
    keys = await ApiKeyRepo(session).list(account.id)
    assert [key.id for key in keys] == [first.id, second.id]
    assert keys[1].revoked_at is not None
    assert [key.id for key in await ApiKeyRepo(session).list(other_account.id)] == [foreign.id]


async def test_same_key_hash_cannot_be_registered_twice(session, account, other_account):
    plain, _ = await _key(session, account)
    with pytest.raises(Conflict):
        await ApiKeyRepo(session).create(
            other_account.id, "dup", hash_api_key(plain, SECRET), key_prefix(plain)
        )


async def test_key_name_is_checked(session, account):
    with pytest.raises(BadRequest):
        await ApiKeyRepo(session).create(account.id, "", "h" * 64, "mp_1234567")
