"""Refreshing OAuth2 tokens at run time: one refresh at a time per connection (in a process: a lock;
across processes: the row's version and refresh lease), rotation saved, failures leave the connection
usable or mark it ``needs_reauth``. A second :class:`ConnectionService` on the same database plays
another process."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.errors import StepError
from app.runtime.connections import ConnectionService
from app.security import oauth
from app.security.connection_store import KIND, ConnectionStore
from app.storage.repositories.connections import ConnectionRepo
from tests.security.connections.oauth_provider import CLIENT_ID, CLIENT_SECRET

NAME = "demo-oauth"
ROOT = Path(__file__).resolve().parents[3]


async def connect(client: httpx.AsyncClient, browser: httpx.AsyncClient) -> None:
    body = {
        "name": NAME,
        "connector": "demo",
        "kind": "oauth2",
        "credentials": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    }
    created = (await client.post("/v1/connections", json=body)).json()
    callback = (await browser.get(created["authorize_url"])).headers["Location"]
    assert (await client.get(callback)).json()["status"] == "active"


async def stored_token(state: Any) -> dict[str, Any]:
    async with state.db.session() as session:
        row = await ConnectionRepo(session).get(state.bootstrap.account_id, NAME)
        assert row is not None
        payload = state.encryptor.decrypt(row.ciphertext, account_id=row.account_id, name=NAME, kind=KIND)
    token: dict[str, Any] = payload["token"]
    return token


def other_process(state: Any, clock: Any, **kwargs: Any) -> ConnectionService:
    """A service with its own locks on the same database, as another server process has."""
    store = ConnectionStore(state.encryptor, state.registry, state.http, environ={}, clock=clock)
    return ConnectionService(state.db, store, clock=clock, **kwargs)


async def test_fresh_tokens_are_used_as_they_are(client, browser, provider, demo_app, clock):
    _, state = demo_app
    await connect(client, browser)
    credentials = await state.connections.resolve(state.bootstrap.account_id, NAME)
    assert credentials == {"kind": "oauth2", "access_token": (await stored_token(state))["access_token"]}
    clock.advance(seconds=3600 - 61)  # 61 s left: more than the 60 s skew
    assert await state.connections.resolve(state.bootstrap.account_id, NAME) == credentials
    assert provider.refresh_count == 0


async def test_concurrent_steps_share_one_refresh(client, browser, provider, demo_app, clock):
    _, state = demo_app
    await connect(client, browser)
    old = await stored_token(state)
    clock.advance(seconds=3600)
    results = await asyncio.gather(
        *(state.connections.resolve(state.bootstrap.account_id, NAME) for _ in range(8))
    )
    assert provider.refresh_count == 1
    tokens = {r["access_token"] for r in results}
    assert len(tokens) == 1
    assert tokens != {old["access_token"]}
    assert tokens <= provider.access_tokens
    new = await stored_token(state)
    assert new["access_token"] in tokens
    assert new["refresh_token"] != old["refresh_token"]


async def test_two_processes_refresh_once_and_the_second_reads_the_firsts_tokens(
    client, browser, provider, demo_app, clock
):
    _, state = demo_app
    await connect(client, browser)
    clock.advance(seconds=3600)
    provider.refresh_gate = asyncio.Event()
    b_waiting, a_done = asyncio.Event(), asyncio.Event()

    async def sleep(_seconds: float) -> None:  # process B polls the row while A holds the lease
        b_waiting.set()
        await a_done.wait()

    process_b = other_process(state, clock, sleep=sleep)
    task_a = asyncio.create_task(state.connections.resolve(state.bootstrap.account_id, NAME))
    await provider.refresh_entered.wait()  # A claimed the row and is at the token endpoint
    task_b = asyncio.create_task(process_b.resolve(state.bootstrap.account_id, NAME))
    await b_waiting.wait()  # B found the lease taken and waits
    provider.refresh_gate.set()
    result_a = await task_a
    a_done.set()
    result_b = await task_b
    assert provider.refresh_count == 1  # B never sent the (already rotated) refresh token
    assert result_a == result_b
    assert result_a is not None
    assert result_a["access_token"] == (await stored_token(state))["access_token"]


async def test_an_abandoned_lease_expires_and_is_taken_over(client, browser, provider, demo_app, clock):
    _, state = demo_app
    await connect(client, browser)
    clock.advance(seconds=3600)
    async with state.db.session() as session:  # a process claimed the refresh, then died
        repo = ConnectionRepo(session)
        row = await repo.get(state.bootstrap.account_id, NAME)
        assert row is not None
        assert await repo.claim_refresh(row.id, row.version, clock.now, clock.now + state.connections.lease)
        await session.commit()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds=30)

    state.connections.sleep = sleep
    credentials = await state.connections.resolve(state.bootstrap.account_id, NAME)
    assert 1 <= len(waits) <= 3  # waited for the lease to run out, then claimed it
    assert provider.refresh_count == 1
    assert credentials is not None
    assert credentials["access_token"] in provider.access_tokens


async def test_a_provider_outage_fails_the_step_retryably_and_leaves_the_connection_usable(
    client, browser, provider, demo_app, clock
):
    _, state = demo_app
    await connect(client, browser)
    clock.advance(seconds=3600)
    provider.fail_refresh_with = 503
    with pytest.raises(StepError) as caught:
        await state.connections.resolve(state.bootstrap.account_id, NAME)
    assert caught.value.code == "connection_refresh_failed"
    assert caught.value.retry_kind == "connection"
    assert "refreshing the access token failed" in caught.value.message
    assert "HTTP 503" in caught.value.message
    shown = (await client.get(f"/v1/connections/{NAME}")).json()
    assert shown["status"] == "active"
    provider.fail_refresh_with = None  # back up: the lease was released, the next step refreshes
    credentials = await state.connections.resolve(state.bootstrap.account_id, NAME)
    assert credentials is not None
    assert credentials["access_token"] in provider.access_tokens
    assert provider.refresh_count == 2


async def test_a_provider_that_does_not_rotate_keeps_the_refresh_token(
    client, browser, provider, demo_app, clock
):
    _, state = demo_app
    await connect(client, browser)
    provider.rotate = False
    old = await stored_token(state)
    clock.advance(seconds=3600)
    await state.connections.resolve(state.bootstrap.account_id, NAME)
    new = await stored_token(state)
    assert new["refresh_token"] == old["refresh_token"]
    assert new["access_token"] != old["access_token"]


async def test_revoked_refresh_token_marks_needs_reauth_once(client, browser, provider, demo_app, clock):
    _, state = demo_app
    await connect(client, browser)
    provider.revoke_all()
    clock.advance(seconds=3600)
    outcomes = await asyncio.gather(
        *(state.connections.resolve(state.bootstrap.account_id, NAME) for _ in range(4)),
        return_exceptions=True,
    )
    assert provider.refresh_count == 1
    assert all(isinstance(o, StepError) and o.code == "connection_needs_reauth" for o in outcomes), outcomes
    assert all("refresh token revoked" in str(o) for o in outcomes)
    assert (await client.get(f"/v1/connections/{NAME}")).json()["status"] == "needs_reauth"


async def test_pkce_is_required_by_the_code_exchange(client, browser, provider, demo_app, clock):
    """A code taken from the redirect cannot be exchanged without the verifier the server kept."""
    _, state = demo_app
    body = {
        "name": NAME,
        "connector": "demo",
        "kind": "oauth2",
        "credentials": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    }
    created = (await client.post("/v1/connections", json=body)).json()
    callback = httpx.URL((await browser.get(created["authorize_url"])).headers["Location"])
    declared = state.registry.get("demo").auth[0]
    with pytest.raises(oauth.OAuthFailure, match="PKCE verification failed") as caught:
        await oauth.exchange_code(
            state.http,
            declared,
            oauth.OAuthClient(CLIENT_ID, CLIENT_SECRET),
            code=callback.params["code"],
            code_verifier=oauth.new_code_verifier(),  # an attacker's guess
            redirect_uri="http://mashpipe.test/v1/oauth/callback",
            now=clock.now,
        )
    assert caught.value.invalid_grant


async def _until(event: asyncio.Event, process: asyncio.subprocess.Process) -> None:
    """Wait for ``event``; fail (instead of hanging) if ``process`` exits first."""
    waiter = asyncio.create_task(event.wait())
    exited = asyncio.create_task(process.wait())
    done, _ = await asyncio.wait({waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if waiter not in done:
        stderr = (await process.stderr.read()).decode() if process.stderr else ""
        raise AssertionError(f"the worker exited with {process.returncode}: {stderr}")
    exited.cancel()


async def test_two_server_processes_rotate_the_tokens_once(
    client, browser, provider, demo_app, clock, tmp_path
):
    """Real subprocesses on the same SQLite file: the second finds the first's refresh lease, waits, and
    uses the tokens the first stored; the provider sees one refresh."""
    _, state = demo_app
    await connect(client, browser)
    clock.advance(seconds=3600)
    provider.refresh_gate = asyncio.Event()
    args = json.dumps(
        {
            "database_url": state.settings.database_url,
            "secret_key": state.settings.secret_key,
            "cafile": str(tmp_path / "ca.pem"),
            "base_url": provider.base_url,
            "account_id": state.bootstrap.account_id,
            "name": NAME,
            "now": clock.now.isoformat(),
        }
    )

    async def spawn() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.security.connections.refresh_worker",
            args,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    first = await spawn()
    await _until(provider.refresh_entered, first)  # the first process holds the lease, at the provider
    second = await spawn()
    assert second.stdout is not None
    assert await second.stdout.readline() == b"waiting\n"  # it found the lease taken
    provider.refresh_gate.set()
    out_first, err_first = await first.communicate()
    out_second, err_second = await second.communicate()
    assert first.returncode == 0, err_first.decode()
    assert second.returncode == 0, err_second.decode()
    credentials_first = json.loads(out_first.decode().strip().splitlines()[-1])
    credentials_second = json.loads(out_second.decode().strip().splitlines()[-1])
    assert provider.refresh_count == 1
    assert credentials_first == credentials_second
    assert credentials_first["access_token"] == (await stored_token(state))["access_token"]
    assert credentials_first["access_token"] in provider.access_tokens
