"""`/v1/keys`: create (shown once), list, revoke, expiry, cheap last-used, and the per-key rate limit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from app.errors import RateLimited
from app.security.ratelimit import RateLimitConfigError, RateLimits, parse_limits
from app.storage.base import utcnow
from app.storage.models import ApiKey
from tests.api.helpers import client_for, error_of


async def _key_row(state: Any, key_id: str):
    async with state.db.session() as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.id == key_id))
        assert row is not None
        return row


async def test_a_new_key_is_shown_once_and_works(api, app_state):
    app, state = app_state
    created = await api.post("/v1/keys", json={"name": "ci"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["key"].startswith("mp_")
    assert body["prefix"] == body["key"][:10]
    assert body["status"] == "active"
    assert body["expires_at"] is None
    row = await _key_row(state, body["id"])
    assert body["key"] not in (row.key_hash, row.prefix)  # only its HMAC is stored

    listed = await api.get("/v1/keys")
    assert listed.status_code == 200
    assert body["key"] not in listed.text
    items = {item["id"]: item for item in listed.json()["items"]}
    assert set(items[body["id"]]) == {
        "id",
        "name",
        "prefix",
        "status",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    }
    assert items[body["id"]]["name"] == "ci"
    assert len(items) == 2  # the bootstrap key and this one

    async with client_for(app, body["key"]) as client:
        assert (await client.get("/v1/pipelines")).status_code == 200


async def test_a_revoked_key_is_refused_from_the_next_request(api, app_state):
    app, _ = app_state
    body = (await api.post("/v1/keys", json={"name": "leaked"})).json()
    async with client_for(app, body["key"]) as client:
        assert (await client.get("/v1/keys")).status_code == 200
        assert (await api.delete(f"/v1/keys/{body['id']}")).status_code == 204
        refused = await client.get("/v1/keys")
        assert refused.status_code == 401
        assert error_of(refused)["code"] == "unauthorized"
    assert (await api.delete(f"/v1/keys/{body['id']}")).status_code == 204  # revoking twice is harmless
    listed = {item["id"]: item for item in (await api.get("/v1/keys")).json()["items"]}
    assert listed[body["id"]]["status"] == "revoked"
    assert listed[body["id"]]["revoked_at"] is not None


async def test_a_key_can_revoke_itself(app_state):
    app, _ = app_state
    from tests.conftest import TEST_KEY

    async with client_for(app, TEST_KEY) as client:
        own = (await client.post("/v1/keys", json={"name": "self"})).json()
        async with client_for(app, own["key"]) as itself:
            assert (await itself.delete(f"/v1/keys/{own['id']}")).status_code == 204
            assert (await itself.get("/v1/keys")).status_code == 401


async def test_an_expired_key_is_refused(api, app_state):
    app, state = app_state
    body = (await api.post("/v1/keys", json={"name": "temp", "expires_in_days": 30})).json()
    assert body["expires_at"] is not None
    async with client_for(app, body["key"]) as client:
        assert (await client.get("/v1/keys")).status_code == 200
        async with state.db.session() as session:  # time passes: the key expired a second ago
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == body["id"])
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
            await session.commit()
        assert (await client.get("/v1/keys")).status_code == 401
    listed = {item["id"]: item for item in (await api.get("/v1/keys")).json()["items"]}
    assert listed[body["id"]]["status"] == "expired"


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "x" * 101}, {"name": "ok", "expires_in_days": 0}, {"name": "ok", "extra": 1}],
)
async def test_invalid_key_requests_are_422(api, body):
    response = await api.post("/v1/keys", json=body)
    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_failed"


async def test_another_accounts_key_cannot_be_revoked_or_seen(api, other, app_state):
    mine = (await api.post("/v1/keys", json={"name": "mine"})).json()
    refused = await other.delete(f"/v1/keys/{mine['id']}")
    assert refused.status_code == 404
    assert mine["id"] not in (await other.get("/v1/keys")).text
    assert (await _key_row(app_state[1], mine["id"])).revoked_at is None


async def test_last_used_is_written_at_most_once_a_minute(api, app_state):
    app, state = app_state
    body = (await api.post("/v1/keys", json={"name": "busy"})).json()
    assert body["last_used_at"] is None
    async with client_for(app, body["key"]) as client:
        await client.get("/v1/keys")
        first = (await _key_row(state, body["id"])).last_used_at
        assert first is not None
        for _ in range(3):
            await client.get("/v1/keys")
        assert (await _key_row(state, body["id"])).last_used_at == first  # no write per request
        async with state.db.session() as session:  # two minutes pass
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == body["id"])
                .values(last_used_at=first - timedelta(minutes=2))
            )
            await session.commit()
        await client.get("/v1/keys")
        touched = (await _key_row(state, body["id"])).last_used_at
        assert touched is not None
        assert touched > first - timedelta(minutes=2)


async def test_the_api_rate_limit_is_per_key_with_retry_after(make_settings, app_runner, api_key):
    settings = make_settings(api_rate_limit="3/minute")
    async with app_runner(settings) as (app, _state), client_for(app, api_key) as client:
        created = (await client.post("/v1/keys", json={"name": "second"})).json()
        for _ in range(2):
            assert (await client.get("/v1/pipelines")).status_code == 200
        limited = await client.get("/v1/pipelines")
        assert limited.status_code == 429
        error = error_of(limited)
        assert error["code"] == "rate_limited"
        assert error["details"]["limit"] == "3 per 1 minute"
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 60
        assert error["details"]["retry_after"] == retry_after
        async with client_for(app, created["key"]) as second:  # another key has its own budget
            assert (await second.get("/v1/pipelines")).status_code == 200
        async with client_for(app) as anon:  # public endpoints are not counted per key
            assert (await anon.get("/v1/health")).status_code == 200


async def test_an_empty_api_rate_limit_turns_it_off(make_settings, app_runner, api_key):
    settings = make_settings(api_rate_limit="")
    async with app_runner(settings) as (app, _state), client_for(app, api_key) as client:
        for _ in range(30):
            assert (await client.get("/v1/keys")).status_code == 200


async def test_public_endpoints_are_limited_per_client_and_route(make_settings, app_runner):
    settings = make_settings(public_rate_limit="2/minute")
    async with app_runner(settings) as (app, _state), client_for(app) as anon:
        for _ in range(2):
            assert (await anon.post("/v1/hooks/some-hook-id", json={})).status_code != 429
        limited = await anon.post("/v1/hooks/some-hook-id", json={})
        assert limited.status_code == 429
        assert error_of(limited)["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert (await anon.post("/v1/hooks/another-hook-id", json={})).status_code != 429
        assert (await anon.get("/v1/apps/default/something")).status_code != 429
    async with app_runner(settings) as (app, _state), client_for(app, client=("10.1.2.3", 1234)) as one:
        async with client_for(app, client=("10.9.9.9", 1234)) as two:
            for _ in range(2):
                await one.post("/v1/hooks/shared", json={})
            assert (await one.post("/v1/hooks/shared", json={})).status_code == 429
            assert (await two.post("/v1/hooks/shared", json={})).status_code != 429


@pytest.mark.parametrize("text", ["lots", "10 per fortnight", "5/minute;nonsense"])
def test_malformed_limits_are_a_clear_error(text):
    with pytest.raises(RateLimitConfigError, match="is not a rate limit"):
        parse_limits(text, "MASHPIPE_API_RATE_LIMIT")


async def test_a_malformed_setting_stops_the_server_at_start(make_settings, app_runner):
    with pytest.raises(RateLimitConfigError, match="MASHPIPE_API_RATE_LIMIT"):
        async with app_runner(make_settings(api_rate_limit="fast")):
            pass


async def test_rate_limits_combine_several_windows():
    limits = RateLimits(parse_limits("2/second;3/minute", "x"))
    await limits.hit_key("k")
    await limits.hit_key("k")
    with pytest.raises(RateLimited) as caught:
        await limits.hit_key("k")
    assert caught.value.retry_after is not None
    assert caught.value.retry_after >= 1
    await limits.aclose()


def test_an_unknown_storage_is_a_clear_error():
    with pytest.raises(RateLimitConfigError, match="rate limit storage"):
        RateLimits(storage_uri="nosuchscheme://x")
