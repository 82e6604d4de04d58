"""`/v1/connections` with stored (non-OAuth) credentials: checked against the connector's declared auth,
encrypted, never returned; listed, read, deleted, tested against the local provider; used by steps."""

from __future__ import annotations

import pytest

from app.runtime.bootstrap import create_account
from app.security.connection_store import KIND
from app.storage.repositories.connections import ConnectionRepo
from tests.api.helpers import client_for, error_of, save, wait_finished

TOKEN = "pat-0123456789abcdef-token"


async def test_bearer_connection_lifecycle(client, provider, demo_app):
    _, state = demo_app
    provider.access_tokens.add(TOKEN)
    body = {"name": "demo-pat", "connector": "demo", "kind": "bearer", "credentials": {"token": TOKEN}}
    created = await client.post("/v1/connections", json=body)
    assert created.status_code == 201, created.text
    answer = created.json()
    assert answer["status"] == "active"
    assert answer["authorize_url"] is None
    assert set(answer) == {
        "name",
        "connector",
        "kind",
        "status",
        "message",
        "token_expires_at",
        "created_at",
        "updated_at",
        "authorize_url",
        "authorize_expires_at",
    }
    duplicate = await client.post("/v1/connections", json=body)
    assert duplicate.status_code == 409

    for response in (
        created,
        await client.get("/v1/connections"),
        await client.get("/v1/connections/demo-pat"),
    ):
        assert response.status_code in (200, 201)
        assert TOKEN not in response.text
    assert [c["name"] for c in (await client.get("/v1/connections")).json()["items"]] == ["demo-pat"]
    async with state.db.session() as session:
        row = await ConnectionRepo(session).get(state.bootstrap.account_id, "demo-pat")
    assert row is not None
    assert TOKEN not in row.ciphertext
    assert state.encryptor.decrypt(row.ciphertext, account_id=row.account_id, name="demo-pat", kind=KIND) == {
        "kind": "bearer",
        "fields": {"token": TOKEN},
    }

    assert (await client.post("/v1/connections/demo-pat/test")).json() == {
        "ok": True,
        "status": 200,
        "message": "GET /me answered 200 OK",
    }
    provider.access_tokens.discard(TOKEN)  # the token was revoked upstream
    failed = (await client.post("/v1/connections/demo-pat/test")).json()
    assert failed["ok"] is False
    assert failed["status"] == 401
    assert "answered 401" in failed["message"]
    assert "Bad credentials" in failed["message"]
    assert TOKEN not in failed["message"]

    assert (await client.delete("/v1/connections/demo-pat")).status_code == 204
    assert (await client.get("/v1/connections/demo-pat")).status_code == 404
    assert (await client.delete("/v1/connections/demo-pat")).status_code == 404
    assert (await client.post("/v1/connections/demo-pat/test")).status_code == 404


async def test_steps_use_the_connection_of_their_runs_account(client, provider, demo_app, api_key):
    app, state = demo_app
    provider.access_tokens.add(TOKEN)
    body = {"name": "pat", "connector": "demo", "kind": "bearer", "credentials": {"token": TOKEN}}
    assert (await client.post("/v1/connections", json=body)).status_code == 201
    source = """\
version: 1
name: who
description: who am I
steps:
  - id: me
    uses: demo.me
    connection: pat
outputs:
  login: ${{ steps.me.output.login }}
"""
    await save(client, source)
    run = (await client.post("/v1/pipelines/who/runs", json={"wait": True})).json()
    run = await wait_finished(client, run["id"])
    assert run["status"] == "succeeded", run
    assert run["outputs"] == {"login": "octo"}
    assert TOKEN not in str(run)

    # another account with the same pipeline has no connection named `pat`
    _, other_key = await create_account(state.db, state.secret_key, "other")
    async with client_for(app, other_key) as other:
        await save(other, source)
        run = (await other.post("/v1/pipelines/who/runs", json={"wait": True})).json()
        run = await wait_finished(other, run["id"])
        assert run["status"] == "failed"
        assert run["steps"][0]["error"]["code"] == "connection_not_found"
        assert "no connection named 'pat'" in run["steps"][0]["error"]["message"]
        assert (await other.get("/v1/connections/pat")).status_code == 404
        assert (await other.delete("/v1/connections/pat")).status_code == 404
        assert (await other.get("/v1/connections")).json()["items"] == []
    assert (await client.get("/v1/connections/pat")).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (
            {"name": "x", "connector": "nope", "kind": "bearer", "credentials": {"token": "t"}},
            422,
            "no connector 'nope' is installed",
        ),
        (
            {"name": "x", "connector": "demo", "kind": "basic", "credentials": {}},
            422,
            "does not accept 'basic' connections (accepted: oauth2, bearer)",
        ),
        (
            {"name": "x", "connector": "demo", "kind": "bearer", "credentials": {}},
            422,
            "credentials.token: required",
        ),
        (
            {"name": "x", "connector": "demo", "kind": "bearer", "credentials": {"token": "  "}},
            422,
            "credentials.token: required",
        ),
        (
            {"name": "x", "connector": "demo", "kind": "bearer", "credentials": {"token": "t", "extra": "y"}},
            422,
            "credentials.extra: unknown field",
        ),
        (
            {"name": "x", "connector": "demo", "kind": "bearer", "credentials": {"token": 5}},
            422,
            "",
        ),
        (
            {
                "name": "x",
                "connector": "demo",
                "kind": "bearer",
                "credentials": {"token": "t"},
                "scopes": ["a"],
            },
            422,
            "scopes apply to oauth2 connections only",
        ),
        ({"name": "-bad", "connector": "demo", "kind": "bearer", "credentials": {"token": "t"}}, 422, ""),
        (
            {
                "name": "x",
                "connector": "demo",
                "kind": "oauth2",
                "credentials": {"client_id": "c"},
                "scopes": ["a b"],
            },
            422,
            "scopes must be at most 50 names without spaces",
        ),
        ({"connector": "demo", "kind": "bearer"}, 422, ""),
    ],
)
async def test_bad_connections_are_refused_clearly(client, body, status, fragment):
    response = await client.post("/v1/connections", json=body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert fragment in error["message"], error
    assert (await client.get("/v1/connections")).json()["items"] == []


async def test_connectors_whose_kinds_cannot_be_tested_answer_409(make_settings, app_runner, api_key):
    """Built-in connectors: a Discord webhook URL cannot be tested (posting is its only use)."""
    async with app_runner(make_settings()) as (app, _state), client_for(app, api_key) as api:
        body = {
            "name": "hook",
            "connector": "discord",
            "kind": "webhook_url",
            "credentials": {"webhook_url": "https://discord.com/api/webhooks/1/abc"},
        }
        assert (await api.post("/v1/connections", json=body)).status_code == 201
        response = await api.post("/v1/connections/hook/test")
        assert response.status_code == 409
        assert "no test request for webhook_url connections" in error_of(response)["message"]
        wrong_host = dict(
            body, name="hook2", credentials={"webhook_url": "https://evil.example/api/webhooks/1"}
        )
        refused = await api.post("/v1/connections", json=wrong_host)
        assert refused.status_code == 422
        assert "must be an https URL on discord.com" in error_of(refused)["message"]
        assert "evil.example" not in refused.text  # the URL is a secret: never repeated
