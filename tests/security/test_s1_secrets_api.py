"""`/v1/secrets`: write-only values, encrypted at rest, names checked when pipelines are saved."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from app.security.crypto import Encryptor
from app.storage.models_secrets import Secret
from tests.api.helpers import error_of, save, wait_finished

USES_TOKEN = """\
version: 1
name: uses-token
inputs:
  base: {type: string}
steps:
  - id: check
    uses: http.get_json
    with:
      url: "${{ inputs.base }}/check"
      headers: {X-Token: "${{ secrets.API_TOKEN }}"}
outputs:
  said: ${{ steps.check.output.said }}
"""


@pytest.fixture
async def checker(local_server):
    """A local upstream telling what token it received, without echoing it."""
    from aiohttp import web

    async def check(request: web.Request) -> web.Response:
        token = request.headers.get("X-Token", "")
        return web.json_response({"said": f"{token[:4]}... ({len(token)} characters)"})

    return await local_server({"GET /check": check})


async def _row(state: Any, name: str):
    async with state.db.session() as session:
        row = await session.scalar(select(Secret).where(Secret.name == name))
        assert row is not None
        return row


async def test_put_list_delete(api):
    created = await api.put("/v1/secrets/API_TOKEN", json={"value": "tok-123456"})
    assert created.status_code == 201, created.text
    assert set(created.json()) == {"name", "created_at", "updated_at"}
    replaced = await api.put("/v1/secrets/API_TOKEN", json={"value": "tok-abcdef"})
    assert replaced.status_code == 200
    assert replaced.json()["created_at"] == created.json()["created_at"]
    assert replaced.json()["updated_at"] >= created.json()["updated_at"]
    await api.put("/v1/secrets/OTHER_ONE", json={"value": "zzzzzz"})

    listed = await api.get("/v1/secrets")
    assert listed.status_code == 200
    body = listed.json()
    assert [item["name"] for item in body["items"]] == ["API_TOKEN", "OTHER_ONE"]
    assert body["total"] == 2
    assert "tok-" not in listed.text
    assert "zzzzzz" not in listed.text

    assert (await api.delete("/v1/secrets/OTHER_ONE")).status_code == 204
    gone = await api.delete("/v1/secrets/OTHER_ONE")
    assert gone.status_code == 404
    assert error_of(gone)["code"] == "not_found"
    assert [item["name"] for item in (await api.get("/v1/secrets")).json()["items"]] == ["API_TOKEN"]


async def test_there_is_no_way_to_read_a_value(api):
    await api.put("/v1/secrets/API_TOKEN", json={"value": "tok-123456"})
    assert (await api.get("/v1/secrets/API_TOKEN")).status_code == 405


@pytest.mark.parametrize("name", ["lower", "9STARTS_WITH_DIGIT", "HAS-DASH", "A" * 101])
async def test_invalid_names_are_refused(api, name):
    response = await api.put(f"/v1/secrets/{name}", json={"value": "x"})
    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_failed"


@pytest.mark.parametrize(
    "body", [{"value": ""}, {}, {"value": "x", "extra": 1}, {"value": 12}, {"value": "x" * 70_000}]
)
async def test_invalid_values_are_refused(api, body):
    response = await api.put("/v1/secrets/API_TOKEN", json=body)
    assert response.status_code == 422, response.text
    assert "x" * 100 not in response.text  # the refused value is not echoed back


async def test_without_a_key_nothing_is_reachable(app_state):
    from tests.api.helpers import client_for

    async with client_for(app_state[0]) as anon:
        for method, path in [("GET", "/v1/secrets"), ("PUT", "/v1/secrets/A"), ("DELETE", "/v1/secrets/A")]:
            response = await anon.request(method, path, json={"value": "x"})
            assert response.status_code == 401, (method, path)


async def test_values_are_stored_encrypted_and_bound_to_account_and_name(api, app_state):
    _, state = app_state
    await api.put("/v1/secrets/API_TOKEN", json={"value": "plain-text-value"})
    row = await _row(state, "API_TOKEN")
    assert "plain-text-value" not in row.ciphertext
    assert row.ciphertext.startswith("gAAAA")  # a Fernet token
    assert state.encryptor.decrypt(row.ciphertext, account_id=row.account_id, name="API_TOKEN") == (
        "plain-text-value"
    )


async def test_saving_a_pipeline_that_reads_a_missing_secret_names_it(api):
    refused = await api.post(
        "/v1/pipelines", content=USES_TOKEN, headers={"Content-Type": "application/yaml"}
    )
    assert refused.status_code == 422
    error = error_of(refused)
    assert error["code"] == "pipeline_invalid"
    assert [p["code"] for p in error["details"]] == ["unknown_secret"]
    assert "API_TOKEN" in error["details"][0]["message"]
    put = await api.put(
        "/v1/pipelines/uses-token", content=USES_TOKEN, headers={"Content-Type": "application/yaml"}
    )
    assert put.status_code == 422
    checked = await api.post("/v1/validate", content=USES_TOKEN, headers={"Content-Type": "application/yaml"})
    assert checked.status_code == 200
    assert checked.json()["valid"] is False
    assert "API_TOKEN" in checked.json()["problems"][0]["message"]

    await api.put("/v1/secrets/API_TOKEN", json={"value": "tok-123456"})
    assert (
        await api.post("/v1/validate", content=USES_TOKEN, headers={"Content-Type": "application/yaml"})
    ).json()["valid"]
    await save(api, USES_TOKEN)


async def test_another_accounts_secret_does_not_satisfy_validation(api, other):
    await api.put("/v1/secrets/API_TOKEN", json={"value": "tok-123456"})
    refused = await other.post(
        "/v1/pipelines", content=USES_TOKEN, headers={"Content-Type": "application/yaml"}
    )
    assert refused.status_code == 422
    assert "API_TOKEN" in error_of(refused)["details"][0]["message"]


async def test_a_run_reads_the_secret_value(api, checker):
    await api.put("/v1/secrets/API_TOKEN", json={"value": "tok-123456"})
    await save(api, USES_TOKEN)
    run = (
        await api.post("/v1/pipelines/uses-token/runs", json={"wait": True, "inputs": {"base": checker}})
    ).json()
    run = await wait_finished(api, run["id"])
    assert run["status"] == "succeeded", run
    assert run["outputs"] == {"said": "tok-... (10 characters)"}


async def test_a_ciphertext_copied_into_another_accounts_row_fails_the_run_clearly(
    api, other, app_state, checker
):
    _, state = app_state
    await api.put("/v1/secrets/API_TOKEN", json={"value": "tok-of-account-a"})
    await other.put("/v1/secrets/API_TOKEN", json={"value": "tok-of-account-b"})
    await save(other, USES_TOKEN)
    a_row = await _row_of(state, "default")
    async with state.db.session() as session:  # an attacker with database access swaps ciphertexts
        await session.execute(
            update(Secret)
            .where(Secret.name == "API_TOKEN", Secret.account_id != a_row.account_id)
            .values(ciphertext=a_row.ciphertext)
        )
        await session.commit()
    run = (
        await other.post("/v1/pipelines/uses-token/runs", json={"wait": True, "inputs": {"base": checker}})
    ).json()
    run = await wait_finished(other, run["id"])
    assert run["status"] == "failed"
    assert "encrypted for another account or name" in run["error"]["message"]
    assert "tok-of-account" not in str(run)


async def test_secrets_written_under_an_old_key_are_read_after_adding_a_new_one(
    make_settings, app_runner, api_key, checker
):
    from tests.api.helpers import client_for

    first = make_settings()
    async with app_runner(first) as (app, _state), client_for(app, api_key) as client:
        await client.put("/v1/secrets/API_TOKEN", json={"value": "tok-123456"})
        await save(client, USES_TOKEN)
    rotated = make_settings(secret_keys=f"a-brand-new-key-0123456789,{first.secret_key}")
    async with app_runner(rotated) as (app, state), client_for(app, api_key) as client:
        assert isinstance(state.encryptor, Encryptor)
        assert state.encryptor.key_count == 2
        body = {"wait": True, "inputs": {"base": checker}}
        run = (await client.post("/v1/pipelines/uses-token/runs", json=body)).json()
        assert (await wait_finished(client, run["id"]))["outputs"] == {"said": "tok-... (10 characters)"}


async def _row_of(state: Any, account_name: str):
    from app.storage.repositories import AccountRepo

    async with state.db.session() as session:
        account = await AccountRepo(session).get_by_name(account_name)
        assert account is not None
        row = await session.scalar(
            select(Secret).where(Secret.account_id == account.id, Secret.name == "API_TOKEN")
        )
        assert row is not None
        return row


async def test_an_account_holds_a_bounded_number_of_secrets(api, monkeypatch):
    monkeypatch.setattr("app.storage.repositories.secrets.SECRETS_PER_ACCOUNT", 2)
    assert (await api.put("/v1/secrets/ONE", json={"value": "v1"})).status_code == 201
    assert (await api.put("/v1/secrets/TWO", json={"value": "v2"})).status_code == 201
    refused = await api.put("/v1/secrets/THREE", json={"value": "v3"})
    assert refused.status_code == 409
    assert "2 secrets" in error_of(refused)["message"]
    assert (await api.put("/v1/secrets/ONE", json={"value": "v1b"})).status_code == 200  # replacing is fine
