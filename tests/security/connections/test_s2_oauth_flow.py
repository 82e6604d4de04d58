"""OAuth2 connections end to end against the local provider (HTTPS on 127.0.0.1): authorize with PKCE,
the callback (state checked, one use, expiry), tokens used by steps, refresh with rotation before
expiry, revocation → ``needs_reauth`` with the provider's message, and authorizing again."""

from __future__ import annotations

from typing import Any

import httpx

from app.security.connection_store import KIND
from app.storage.models_connections import ConnectionRow
from app.storage.repositories.connections import ConnectionRepo
from tests.api.helpers import error_of, save, wait_finished
from tests.security.connections.oauth_provider import CLIENT_ID, CLIENT_SECRET, PUBLIC_CLIENT_ID

PIPELINE = """\
version: 1
name: who
description: asks the demo API who the token belongs to
steps:
  - id: me
    uses: demo.me
    connection: demo-oauth
outputs:
  login: ${{ steps.me.output.login }}
"""


async def create_oauth(client: httpx.AsyncClient, **credentials: str) -> dict[str, Any]:
    body = {
        "name": "demo-oauth",
        "connector": "demo",
        "kind": "oauth2",
        "credentials": credentials or {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    }
    response = await client.post("/v1/connections", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def authorize(browser: httpx.AsyncClient, authorize_url: str) -> httpx.URL:
    """The user opens the URL; the provider approves and redirects: the callback URL it sends them to."""
    response = await browser.get(authorize_url)
    assert response.status_code == 302, response.text
    return httpx.URL(response.headers["Location"])


async def run_who(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/v1/pipelines/who/runs", json={"wait": True})
    assert response.status_code in (200, 201, 202), response.text
    run: dict[str, Any] = await wait_finished(client, response.json()["id"])
    return run


async def stored(state: Any, name: str = "demo-oauth") -> tuple[ConnectionRow, dict[str, Any]]:
    async with state.db.session() as session:
        row = await ConnectionRepo(session).get(state.bootstrap.account_id, name)
        assert row is not None
        return row, state.encryptor.decrypt(row.ciphertext, account_id=row.account_id, name=name, kind=KIND)


async def test_authorize_callback_run_refresh_revoke_reauthorize(client, browser, provider, demo_app, clock):
    _, state = demo_app
    created = await create_oauth(client)
    assert created["status"] == "pending"
    assert created["kind"] == "oauth2"
    assert created["token_expires_at"] is None
    url = httpx.URL(created["authorize_url"])
    assert url.copy_with(query=None) == httpx.URL(f"{provider.base_url}/authorize")
    params = dict(url.params)
    assert params["client_id"] == CLIENT_ID
    assert params["response_type"] == "code"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["redirect_uri"] == "http://mashpipe.test/v1/oauth/callback"
    assert params["scope"] == "read"
    assert CLIENT_SECRET not in str(url)

    # a step using a pending connection fails saying so
    await save(client, PIPELINE)
    run = await run_who(client)
    assert run["status"] == "failed"
    assert "waiting for its OAuth2 authorization" in run["error"]["message"]

    callback = await authorize(browser, created["authorize_url"])
    assert callback.params["state"] == params["state"]
    answer = await client.get(str(callback))
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "active"
    assert answer.json()["token_expires_at"] is not None
    # the exchange sent the PKCE verifier, the redirect URI and the client's basic auth
    exchange = provider.token_requests[-1]
    assert exchange["grant_type"] == "authorization_code"
    assert exchange["auth"] == "Basic"
    assert exchange["redirect_uri"] == params["redirect_uri"]
    assert len(exchange["code_verifier"]) >= 43
    # the state is used up: a replayed callback is refused
    replay = await client.get(str(callback))
    assert replay.status_code == 400
    assert "unknown, already used or expired OAuth state" in error_of(replay)["message"]

    run = await run_who(client)
    assert run["status"] == "succeeded", run
    assert run["outputs"] == {"login": "octo"}
    assert provider.refresh_count == 0
    _, payload = await stored(state)
    first_refresh = payload["token"]["refresh_token"]

    # an hour later the token is about to expire: it is refreshed first, the rotated refresh token saved
    clock.advance(seconds=3600 - 30)
    run = await run_who(client)
    assert run["status"] == "succeeded", run
    assert provider.refresh_count == 1
    row, payload = await stored(state)
    assert payload["token"]["refresh_token"] != first_refresh
    assert payload["token"]["refresh_token"] in provider.refresh_tokens
    assert first_refresh not in provider.refresh_tokens
    assert row.token_expires_at is not None
    assert row.token_expires_at > clock.now
    assert (await client.post("/v1/connections/demo-oauth/test")).json() == {
        "ok": True,
        "status": 200,
        "message": "GET /me answered 200 OK",
    }

    # the user revokes the app; at the next expiry the refresh gets invalid_grant
    provider.revoke_all()
    clock.advance(seconds=3600)
    run = await run_who(client)
    assert run["status"] == "failed"
    [step] = run["steps"]
    assert step["error"]["code"] == "connection_needs_reauth"
    message = step["error"]["message"]
    assert message == (
        "connection 'demo-oauth' needs to be authorized again: the provider refused the refresh token "
        "(invalid_grant: refresh token revoked) (POST /v1/connections/demo-oauth/authorize gives the URL "
        "to open)"
    )
    assert message in run["error"]["message"]
    listed = (await client.get("/v1/connections")).json()["items"]
    assert [(c["name"], c["status"]) for c in listed] == [("demo-oauth", "needs_reauth")]
    assert "invalid_grant" in listed[0]["message"]
    refreshes = provider.refresh_count
    run = await run_who(client)  # no new refresh attempt while it needs re-authorization
    assert run["status"] == "failed"
    assert provider.refresh_count == refreshes
    tested = (await client.post("/v1/connections/demo-oauth/test")).json()
    assert tested["ok"] is False
    assert tested["status"] is None
    assert "authorized again" in tested["message"]

    # authorize again: active, runs work
    again = await client.post("/v1/connections/demo-oauth/authorize")
    assert again.status_code == 200, again.text
    callback = await authorize(browser, again.json()["authorize_url"])
    assert (await client.get(str(callback))).json()["status"] == "active"
    run = await run_who(client)
    assert run["status"] == "succeeded", run


async def test_secrets_and_tokens_never_leave_the_server(client, browser, provider, demo_app):
    _, state = demo_app
    created = await create_oauth(client)
    await client.get(str(await authorize(browser, created["authorize_url"])))
    row, payload = await stored(state)
    secrets = [CLIENT_SECRET, payload["token"]["access_token"], payload["token"]["refresh_token"]]
    for path in ("/v1/connections", "/v1/connections/demo-oauth"):
        text = (await client.get(path)).text
        assert all(secret not in text for secret in secrets), path
    assert all(secret not in row.ciphertext for secret in secrets)  # encrypted at rest


async def test_callback_refuses_unknown_expired_and_denied(client, browser, provider, demo_app, clock):
    unknown = await client.get("/v1/oauth/callback", params={"state": "made-up", "code": "x"})
    assert unknown.status_code == 400
    assert "unknown, already used or expired" in error_of(unknown)["message"]

    created = await create_oauth(client)
    callback = await authorize(browser, created["authorize_url"])
    clock.advance(minutes=10, seconds=1)
    expired = await client.get(str(callback))
    assert expired.status_code == 400
    assert "expired" in error_of(expired)["message"]

    clock.advance(minutes=1)
    again = (await client.post("/v1/connections/demo-oauth/authorize")).json()
    provider.deny = True
    callback = await authorize(browser, again["authorize_url"])
    denied = await client.get(str(callback))
    assert denied.status_code == 400
    assert "the provider refused the authorization: access_denied (nope)" in error_of(denied)["message"]
    shown = (await client.get("/v1/connections/demo-oauth")).json()
    assert shown["status"] == "pending"
    assert "access_denied" in shown["message"]
    assert (await client.get(str(callback))).status_code == 400  # the state was used up by the refusal


async def test_a_new_authorization_replaces_the_previous_one(client, browser, provider, demo_app):
    first = await create_oauth(client)
    second = (await client.post("/v1/connections/demo-oauth/authorize")).json()
    stale = await authorize(browser, first["authorize_url"])
    assert (await client.get(str(stale))).status_code == 400
    fresh = await authorize(browser, second["authorize_url"])
    assert (await client.get(str(fresh))).json()["status"] == "active"


async def test_public_client_from_the_server_environment(client, browser, provider, demo_app):
    _, state = demo_app
    state.connections.store.environ = {"MASHPIPE_OAUTH_DEMO_CLIENT_ID": PUBLIC_CLIENT_ID}
    response = await client.post(
        "/v1/connections", json={"name": "demo-oauth", "connector": "demo", "kind": "oauth2"}
    )
    assert response.status_code == 201, response.text
    assert httpx.URL(response.json()["authorize_url"]).params["client_id"] == PUBLIC_CLIENT_ID
    callback = await authorize(browser, response.json()["authorize_url"])
    assert (await client.get(str(callback))).json()["status"] == "active"
    exchange = provider.token_requests[-1]
    assert exchange["client_id"] == PUBLIC_CLIENT_ID
    assert exchange["auth"] == ""
    _, payload = await stored(state)
    assert payload["client"] is None  # read from the server's environment again when refreshing


async def test_oauth2_without_any_client_is_refused(client):
    response = await client.post(
        "/v1/connections", json={"name": "demo-oauth", "connector": "demo", "kind": "oauth2"}
    )
    assert response.status_code == 422
    assert "MASHPIPE_OAUTH_DEMO_CLIENT_ID" in error_of(response)["message"]


async def test_token_endpoint_calls_go_through_the_egress_guard(make_demo_app, api_key, browser, provider):
    """With loopback not allow-listed, the code exchange is refused by the guard (the pinned transport
    of the test would allow it: the refusal comes from the platform's guard on the OAuth call)."""
    from tests.api.helpers import client_for

    async with make_demo_app(egress_allow="") as (app, _state), client_for(app, api_key) as client:
        created = await create_oauth(client)
        callback = await authorize(browser, created["authorize_url"])
        answer = await client.get(str(callback))
        assert answer.status_code == 400
        message = error_of(answer)["message"]
        assert "the token endpoint could not be reached" in message
        assert "refusing to connect to 127.0.0.1 (loopback)" in message
    assert not any(r.get("grant_type") == "authorization_code" for r in provider.token_requests)
