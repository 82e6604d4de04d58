"""Webhooks: hook URLs kept across revisions, deliveries that start runs, signatures, dedupe, limits."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import time
from typing import Any

import httpx
import pytest

from app.runtime.bootstrap import create_account
from app.security.webhook_signatures import standard_webhooks_signature
from app.storage.repositories.secrets import SecretRepo

from .helpers import client_for, error_of, save, wait_finished

ECHO = """\
version: 1
name: echo
description: Echoes what the hook received
inputs:
  greeting: {type: string, default: hi}
triggers:
  - webhook: {}
steps:
  - id: echo
    uses: core.set
    with: {value: "${{ trigger.body }}"}
outputs:
  body: ${{ steps.echo.output }}
  kind: ${{ trigger.kind }}
  greeting: ${{ inputs.greeting }}
"""

SIGNED = """\
version: 1
name: signed
triggers:
  - webhook:
      verify:
        hmac_sha256: {header: X-Hub-Signature-256, secret: "${{ secrets.HOOK_SECRET }}", prefix: "sha256="}
      dedupe_header: X-GitHub-Delivery
steps:
  - id: a
    uses: core.set
    with: {value: "${{ trigger.body.action }}"}
outputs:
  action: ${{ steps.a.output }}
"""

STANDARD_KEY = b"standard-webhooks-key-0123456789"
STANDARD = f"""\
version: 1
name: standard
triggers:
  - webhook:
      verify:
        standard_webhooks: {{secret: "whsec_{base64.b64encode(STANDARD_KEY).decode()}"}}
      dedupe_header: webhook-id
steps:
  - id: a
    uses: core.set
    with: {{value: "${{{{ trigger.body }}}}"}}
outputs:
  body: ${{{{ steps.a.output }}}}
"""

FAILING = """\
version: 1
name: failing
triggers:
  - webhook: {}
steps:
  - id: boom
    uses: core.fail
    with: {message: "deliberate failure"}
"""


async def hook_path(api: httpx.AsyncClient, name: str) -> str:
    response = await api.get(f"/v1/pipelines/{name}")
    assert response.status_code == 200, response.text
    hooks = response.json()["hooks"]
    assert len(hooks) == 1
    return "/v1/hooks/" + hooks[0]["id"]


async def run_count(api: httpx.AsyncClient, pipeline: str) -> int:
    response = await api.get("/v1/runs", params={"pipeline": pipeline})
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


async def put_secret(state: Any, name: str, value: str) -> None:
    async with state.db.session() as session:
        await state.secrets.put(session, state.bootstrap.account_id, name, value)
        await session.commit()


def github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- hooks of pipelines ---------------------------------------------------------------------------


async def test_saving_a_webhook_pipeline_creates_an_unguessable_hook_kept_across_revisions(api):
    created = await save(api, ECHO)
    [hook] = created["hooks"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{32,}", hook["id"])  # >= 192 bits, URL-safe
    assert hook["url"] == f"http://mashpipe.test/v1/hooks/{hook['id']}"

    changed = ECHO.replace("Echoes what", "Echoes back what")
    response = await api.put(
        "/v1/pipelines/echo", content=changed, headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["revision"] == 2
    assert response.json()["hooks"] == [hook]

    without = changed.replace("triggers:\n  - webhook: {}\n", "")
    response = await api.put(
        "/v1/pipelines/echo", content=without, headers={"Content-Type": "application/yaml"}
    )
    assert response.json()["hooks"] == []
    gone = await api.post(f"/v1/hooks/{hook['id']}", json={})
    assert gone.status_code == 404
    assert error_of(gone)["code"] == "not_found"

    response = await api.put("/v1/pipelines/echo", content=ECHO, headers={"Content-Type": "application/yaml"})
    assert response.json()["hooks"] == [hook]  # the same URL again
    assert (await api.post(f"/v1/hooks/{hook['id']}", json={})).status_code == 202


async def test_two_pipelines_get_different_hooks_and_unknown_hooks_are_404(api, anon):
    first = (await save(api, ECHO))["hooks"][0]["id"]
    second = (await save(api, FAILING))["hooks"][0]["id"]
    assert first != second
    for path in ("/v1/hooks/nope", "/v1/hooks/" + "x" * 32, "/v1/hooks/" + "x" * 65):
        response = await anon.post(path, json={})
        assert response.status_code in (404, 422), path
        assert error_of(response)["code"] in ("not_found", "validation_failed")


# -- deliveries -------------------------------------------------------------------------------------


async def test_a_json_delivery_starts_a_run_with_body_headers_and_query(api, anon):
    await save(api, ECHO)
    path = await hook_path(api, "echo")
    response = await anon.post(
        path + "?source=gh&source=ignored&wait=false",
        json={"action": "opened", "n": 1},
        headers={
            "X-Event": "issues",
            "Authorization": "Bearer someone-elses-token",
            "Cookie": "session=abc",
        },
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"run_id", "duplicate"}
    assert body["duplicate"] is False
    run = await wait_finished(api, body["run_id"])
    assert run["status"] == "succeeded"
    assert run["trigger_kind"] == "webhook"
    trigger = run["trigger"]
    assert trigger["kind"] == "webhook"
    assert trigger["body"] == {"action": "opened", "n": 1}
    assert trigger["query"] == {"source": "gh"}
    assert trigger["headers"]["x-event"] == "issues"
    assert trigger["headers"]["content-type"] == "application/json"
    assert "authorization" not in trigger["headers"]
    assert "cookie" not in trigger["headers"]
    assert all(name == name.lower() for name in trigger["headers"])
    assert run["outputs"] == {"body": {"action": "opened", "n": 1}, "kind": "webhook", "greeting": "hi"}


async def test_form_and_raw_bodies(api, anon):
    await save(api, ECHO)
    path = await hook_path(api, "echo")
    form = await anon.post(path + "?wait=true", data={"text": "hello", "user": "ann"})
    assert form.status_code == 200, form.text
    assert form.json()["outputs"]["body"] == {"text": "hello", "user": "ann"}

    raw = await anon.post(path + "?wait=true", content=b"plain words", headers={"Content-Type": "text/plain"})
    assert raw.json()["outputs"]["body"] == "plain words"

    empty = await anon.post(path + "?wait=true")
    assert empty.json()["outputs"]["body"] is None

    bad_json = await anon.post(path, content=b"{nope", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400
    assert error_of(bad_json)["code"] == "webhook_payload_invalid"
    assert await run_count(api, "echo") == 3


async def test_wait_true_returns_the_outputs_and_a_failed_run_is_502(api, anon):
    await save(api, ECHO)
    await save(api, FAILING)
    response = await anon.post(await hook_path(api, "echo") + "?wait=true", json={"x": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["outputs"]["body"] == {"x": 1}
    assert body["run_id"]

    failed = await anon.post(await hook_path(api, "failing") + "?wait=true", json={})
    assert failed.status_code == 502
    error = error_of(failed)
    assert error["code"] == "run_failed"
    assert "deliberate failure" in error["message"]
    assert error["details"]["status"] == "failed"
    assert error["details"]["run_id"]


# -- signatures -------------------------------------------------------------------------------------


async def test_hmac_signature_good_bad_and_missing(api, anon, app_state):
    await put_secret(app_state[1], "HOOK_SECRET", "It's a Secret to Everybody")
    await save(api, SIGNED)
    path = await hook_path(api, "signed")
    body = b'{"action":"opened"}'
    good = {"Content-Type": "application/json", "X-GitHub-Delivery": "d-1"}

    missing = await anon.post(path, content=body, headers=good)
    assert missing.status_code == 401
    assert error_of(missing)["code"] == "webhook_signature_invalid"
    wrong = await anon.post(
        path, content=body, headers={**good, "X-Hub-Signature-256": github_signature("guess", body)}
    )
    assert wrong.status_code == 401
    tampered = await anon.post(
        path,
        content=b'{"action":"closed"}',
        headers={**good, "X-Hub-Signature-256": github_signature("It's a Secret to Everybody", body)},
    )
    assert tampered.status_code == 401
    assert await run_count(api, "signed") == 0  # nothing started, nothing recorded

    signed = {**good, "X-Hub-Signature-256": github_signature("It's a Secret to Everybody", body)}
    response = await anon.post(path + "?wait=true", content=body, headers=signed)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == {"action": "opened"}


async def test_a_verify_block_with_a_missing_secret_refuses_every_call(api, anon, app_state):
    state = app_state[1]
    await put_secret(state, "HOOK_SECRET", "soon-gone")
    await save(api, SIGNED)
    async with state.db.session() as session:  # the secret is deleted after the pipeline was saved
        assert await SecretRepo(session).delete(state.bootstrap.account_id, "HOOK_SECRET")
        await session.commit()
    path = await hook_path(api, "signed")
    body = b"{}"
    response = await anon.post(
        path,
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": github_signature("", body)},
    )
    assert response.status_code == 401
    assert await run_count(api, "signed") == 0


async def test_a_literal_hmac_secret(api, anon):
    literal = SIGNED.replace('"${{ secrets.HOOK_SECRET }}"', "literal-secret").replace(
        "name: signed", "name: lit"
    )
    await save(api, literal)
    path = await hook_path(api, "lit")
    body = b'{"action":"edited"}'
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": github_signature("literal-secret", body),
    }
    response = await anon.post(path + "?wait=true", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == {"action": "edited"}


def standard_headers(
    body: bytes, *, message_id: str = "msg_1", timestamp: int | None = None
) -> dict[str, str]:
    sent = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(sent),
        "webhook-signature": standard_webhooks_signature(STANDARD_KEY, message_id, sent, body),
    }


async def test_standard_webhooks(api, anon):
    await save(api, STANDARD)
    path = await hook_path(api, "standard")
    body = b'{"type":"invoice.paid"}'

    response = await anon.post(path + "?wait=true", content=body, headers=standard_headers(body))
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == {"body": {"type": "invoice.paid"}}

    stale = standard_headers(body, message_id="msg_2", timestamp=int(time.time()) - 600)
    assert (await anon.post(path, content=body, headers=stale)).status_code == 401
    forged = {**standard_headers(body, message_id="msg_3"), "webhook-signature": "v1,AAAA"}
    assert (await anon.post(path, content=body, headers=forged)).status_code == 401
    other_body = await anon.post(
        path, content=b'{"type":"x"}', headers=standard_headers(body, message_id="msg_4")
    )
    assert other_body.status_code == 401
    unsigned = await anon.post(path, content=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    assert await run_count(api, "standard") == 1

    redelivered = await anon.post(path, content=body, headers=standard_headers(body))  # same webhook-id
    assert redelivered.status_code == 200
    assert redelivered.json()["duplicate"] is True
    assert await run_count(api, "standard") == 1


# -- dedupe -----------------------------------------------------------------------------------------


async def test_a_redelivery_answers_200_with_the_first_run_and_starts_nothing(api, anon, app_state):
    await put_secret(app_state[1], "HOOK_SECRET", "s3cret-value")
    await save(api, SIGNED)
    path = await hook_path(api, "signed")
    body = b'{"action":"opened"}'
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": github_signature("s3cret-value", body),
    }
    first = await anon.post(path, content=body, headers=headers)
    assert first.status_code == 202
    again = await anon.post(path, content=body, headers=headers)
    assert again.status_code == 200
    assert again.json() == {"run_id": first.json()["run_id"], "duplicate": True}
    waited = await anon.post(path + "?wait=true", content=body, headers=headers)
    assert waited.status_code == 200
    assert waited.json()["run_id"] == first.json()["run_id"]
    assert waited.json()["outputs"] == {"action": "opened"}

    other = await anon.post(path, content=body, headers={**headers, "X-GitHub-Delivery": "another"})
    assert other.status_code == 202
    assert other.json()["run_id"] != first.json()["run_id"]
    assert await run_count(api, "signed") == 2


async def test_concurrent_identical_deliveries_start_exactly_one_run(api, anon, app_state):
    await put_secret(app_state[1], "HOOK_SECRET", "s3cret-value")
    await save(api, SIGNED)
    path = await hook_path(api, "signed")
    body = b'{"action":"opened"}'
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Delivery": "same-delivery",
        "X-Hub-Signature-256": github_signature("s3cret-value", body),
    }
    responses = await asyncio.gather(*(anon.post(path, content=body, headers=headers) for _ in range(20)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 19 + [202]
    run_ids = {response.json()["run_id"] for response in responses}
    assert len(run_ids) == 1
    assert await run_count(api, "signed") == 1
    run = await wait_finished(api, run_ids.pop())
    assert run["status"] == "succeeded"


async def test_a_long_dedupe_value_is_hashed(api, anon):
    source = ECHO.replace("  - webhook: {}", "  - webhook: {dedupe_header: X-Id}")
    await save(api, source)
    path = await hook_path(api, "echo")
    long_value = "v" * 5000
    first = await anon.post(path, json={}, headers={"X-Id": long_value})
    second = await anon.post(path, json={}, headers={"X-Id": long_value})
    third = await anon.post(path, json={}, headers={"X-Id": long_value[:-1]})
    assert (first.status_code, second.status_code, third.status_code) == (202, 200, 202)
    assert second.json()["run_id"] == first.json()["run_id"]
    nothing = await anon.post(path, json={})  # no header: no dedupe
    assert nothing.status_code == 202


# -- limits and isolation ---------------------------------------------------------------------------


@pytest.fixture
def settings(make_settings):
    return make_settings(webhook_max_body_bytes=2048, max_body_bytes=1500)


async def test_the_webhook_body_limit_is_413_and_starts_nothing(api, anon):
    await save(api, ECHO)
    path = await hook_path(api, "echo")
    fits = await anon.post(path, content=b"x" * 2000, headers={"Content-Type": "text/plain"})
    assert fits.status_code == 202  # over max_body_bytes, within webhook_max_body_bytes
    declared = await anon.post(path, content=b"x" * 2049, headers={"Content-Type": "text/plain"})
    assert declared.status_code == 413
    assert error_of(declared)["code"] == "payload_too_large"

    async def chunks():
        for _ in range(10):
            yield b"y" * 500

    streamed = await anon.post(path, content=chunks(), headers={"Content-Type": "text/plain"})
    assert streamed.status_code == 413
    assert await run_count(api, "echo") == 1


async def test_another_accounts_runs_are_not_readable_through_a_hook(api, anon, app_state):
    app, state = app_state
    _, key = await create_account(state.db, state.secret_key, "other")
    await save(api, ECHO)
    path = await hook_path(api, "echo")
    run_id = (await anon.post(path, json={"n": 1})).json()["run_id"]
    async with client_for(app, key) as other:
        assert (await other.get(f"/v1/runs/{run_id}")).status_code == 404
        assert (await other.get("/v1/pipelines/echo")).status_code == 404


async def test_required_inputs_without_defaults_make_deliveries_422(api, anon):
    source = ECHO.replace("greeting: {type: string, default: hi}", "greeting: {type: string, required: true}")
    await save(api, source)
    response = await anon.post(await hook_path(api, "echo"), json={})
    assert response.status_code == 422
    assert error_of(response)["details"] == [{"input": "greeting", "message": "`greeting` is required"}]


async def test_the_openapi_document_lists_the_hook_endpoint_without_api_key(anon):
    document = (await anon.get("/openapi.json")).json()
    operation = document["paths"]["/v1/hooks/{hook_id}"]["post"]
    assert operation["operationId"] == "deliverWebhook"
    assert "security" not in operation
    assert {"202", "200", "401", "404", "413"} <= set(operation["responses"])
