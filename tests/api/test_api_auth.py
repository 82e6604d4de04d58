"""Authentication (Bearer API keys), public endpoints and account isolation (always 404)."""

from __future__ import annotations

import pytest

from .helpers import HELLO, client_for, error_of, save

PROTECTED = [
    ("GET", "/v1/pipelines"),
    ("POST", "/v1/pipelines"),
    ("GET", "/v1/pipelines/hello"),
    ("PUT", "/v1/pipelines/hello"),
    ("DELETE", "/v1/pipelines/hello"),
    ("GET", "/v1/pipelines/hello/revisions"),
    ("GET", "/v1/pipelines/hello/revisions/1"),
    ("POST", "/v1/pipelines/hello/runs"),
    ("POST", "/v1/validate"),
    ("GET", "/v1/runs"),
    ("GET", "/v1/runs/abc"),
    ("POST", "/v1/runs/abc/cancel"),
    ("GET", "/v1/connectors"),
    ("GET", "/v1/connectors/http"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_protected_endpoint_wants_an_api_key(anon, method, path):
    response = await anon.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert error_of(response)["code"] == "unauthorized"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer mp_not_a_real_key_at_all_0000000000",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "mp_test_key_0123456789abcdef0123456789",
        "Bearer " + "x" * 2000,
    ],
)
async def test_wrong_keys_and_schemes_are_401(anon, header):
    response = await anon.get("/v1/pipelines", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "mp_" not in error_of(response)["message"]


async def test_a_revoked_key_is_refused(app_state):
    from app.runtime.bootstrap import create_account
    from app.storage.repositories import ApiKeyRepo

    app, state = app_state
    account_id, key = await create_account(state.db, state.secret_key, "revoked")
    async with client_for(app, key) as client:
        assert (await client.get("/v1/pipelines")).status_code == 200
        async with state.db.session() as session:
            (api_key,) = await ApiKeyRepo(session).list(account_id)
            from datetime import UTC, datetime

            assert await ApiKeyRepo(session).revoke(account_id, api_key.id, datetime.now(UTC))
            await session.commit()
        assert (await client.get("/v1/pipelines")).status_code == 401


async def test_health_and_pipeline_schema_are_public(anon):
    health = await anon.get("/v1/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    schema = await anon.get("/v1/schemas/pipeline.json")
    assert schema.status_code == 200
    assert schema.headers["content-type"].startswith("application/schema+json")
    body = schema.json()
    assert body["$schema"].startswith("https://json-schema.org/")
    assert "steps" in body["properties"]
    # the served schema also describes the `with` of installed connector operations
    assert "http.get_json" in body["$defs"]
    assert "core.filter" in body["$defs"]
    assert (await anon.get("/v1/schemas/pipeline.json")).json() == body


async def test_another_accounts_pipeline_and_runs_are_404(api, other):
    await save(api, HELLO)
    run = (await api.post("/v1/pipelines/hello/runs", json={"wait": True})).json()

    for method, path in [
        ("GET", "/v1/pipelines/hello"),
        ("DELETE", "/v1/pipelines/hello"),
        ("GET", "/v1/pipelines/hello/revisions"),
        ("GET", "/v1/pipelines/hello/revisions/1"),
        ("GET", f"/v1/runs/{run['id']}"),
        ("POST", f"/v1/runs/{run['id']}/cancel"),
    ]:
        response = await other.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert error_of(response)["code"] == "not_found"

    response = await other.post("/v1/pipelines/hello/runs", json={})
    assert response.status_code == 404
    listed = (await other.get("/v1/pipelines")).json()
    assert listed == {"items": [], "total": 0, "next_cursor": None, "total_exact": True}
    runs = (await other.get("/v1/runs")).json()
    assert runs["items"] == []
    assert runs["total"] == 0

    # the same name is free in the other account, and stays separate
    created = await save(other, HELLO.replace("Greets someone", "Other greeting"))
    assert created["description"] == "Other greeting"
    assert (await api.get("/v1/pipelines/hello")).json()["description"] == "Greets someone"
    # and the owner still sees everything
    assert (await api.get(f"/v1/runs/{run['id']}")).status_code == 200
