"""Pipelines: save (YAML or JSON), read, list, update (revisions), delete, validate."""

from __future__ import annotations

import hashlib

import pytest

from .helpers import HELLO, error_of, save

YAML = {"Content-Type": "application/yaml"}

INVALID = """\
version: 1
name: broken
steps:
  - id: a
    uses: core.set
    with: {value: 1}
    colour: blue
  - id: b
    uses: nosuch.thing
  - id: c
    uses: core.set
    with: {value: "${{ steps.zzz.output }}"}
"""


async def test_create_from_yaml_returns_the_pipeline(api):
    body = await save(api, HELLO)
    assert body["name"] == "hello"
    assert body["revision"] == 1
    assert body["description"] == "Greets someone"
    assert body["source"] == HELLO
    assert body["inputs"]["name"]["default"] == "world"
    assert body["inputs"]["times"]["type"] == "integer"
    assert body["triggers"] == []
    assert body["steps"] == ["greeting"]
    assert body["outputs"] == ["greeting", "times"]
    assert body["created_at"]
    assert body["updated_at"]


@pytest.mark.parametrize(
    "content_type", ["text/yaml", "application/x-yaml", "application/yaml; charset=utf-8"]
)
async def test_create_accepts_every_yaml_content_type(api, content_type):
    response = await api.post("/v1/pipelines", content=HELLO, headers={"Content-Type": content_type})
    assert response.status_code == 201, response.text


async def test_create_from_json(api):
    response = await api.post("/v1/pipelines", json={"source": HELLO})
    assert response.status_code == 201
    assert response.json()["source"] == HELLO


async def test_create_invalid_reports_every_problem_with_positions(api):
    response = await api.post("/v1/pipelines", content=INVALID, headers=YAML)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "pipeline_invalid"
    problems = error["details"]
    assert len(problems) >= 3
    for problem in problems:
        assert set(problem) == {"line", "column", "path", "code", "message"}
        assert problem["line"] >= 1
        assert problem["column"] >= 1
    lines = {p["line"] for p in problems}
    assert {7, 9, 12} <= lines
    assert (await api.get("/v1/pipelines/broken")).status_code == 404


@pytest.mark.parametrize(
    "source",
    [
        "",
        "   ",
        "version: 1\nname: [unclosed\n",
        "- just\n- a list\n",
        "a: 1\na: 2\n",
        "x: &a 1\ny: *a\n",
        "!!python/object:os.system {}\n",
        "\t\tversion: 1",
        "[" * 200,
        "version: 1\nname: x\n---\nversion: 1\n",
    ],
)
async def test_malformed_yaml_is_422_never_500(api, source):
    response = await api.post("/v1/pipelines", content=source.encode(), headers=YAML)
    assert response.status_code == 422, response.text
    assert error_of(response)["code"] == "pipeline_invalid"
    validated = await api.post("/v1/validate", content=source.encode(), headers=YAML)
    assert validated.status_code == 200
    assert validated.json()["valid"] is False


async def test_json_body_must_hold_a_source_string(api):
    for body in ({"source": 12}, {}, ["x"], "text"):
        response = await api.post("/v1/pipelines", json=body)
        assert response.status_code == 422, body
        assert error_of(response)["code"] == "validation_failed"


async def test_existing_name_is_409(api):
    await save(api, HELLO)
    response = await api.post("/v1/pipelines", content=HELLO, headers=YAML)
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "conflict"
    assert "PUT" in error["message"]


async def test_put_creates_then_adds_revisions(api):
    created = await api.put("/v1/pipelines/hello", content=HELLO, headers=YAML)
    assert created.status_code == 201
    assert created.json()["revision"] == 1

    same = await api.put("/v1/pipelines/hello", content=HELLO, headers=YAML)
    assert same.status_code == 200
    assert same.json()["revision"] == 1  # identical source: no new revision

    changed = HELLO.replace("Greets someone", "Greets anyone")
    updated = await api.put("/v1/pipelines/hello", json={"source": changed})
    assert updated.status_code == 200
    assert updated.json()["revision"] == 2
    assert updated.json()["description"] == "Greets anyone"

    latest = (await api.get("/v1/pipelines/hello")).json()
    assert latest["revision"] == 2
    assert latest["source"] == changed


async def test_put_name_must_match_the_url(api):
    response = await api.put("/v1/pipelines/other-name", content=HELLO, headers=YAML)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "pipeline_invalid"
    assert error["details"][0]["code"] == "name_mismatch"
    assert error["details"][0]["line"] == 3  # the `name:` line of HELLO
    assert (await api.get("/v1/pipelines/other-name")).status_code == 404


async def test_put_invalid_source_is_422_and_keeps_the_revision(api):
    await save(api, HELLO)
    response = await api.put("/v1/pipelines/hello", content=INVALID.replace("broken", "hello"), headers=YAML)
    assert response.status_code == 422
    assert (await api.get("/v1/pipelines/hello")).json()["revision"] == 1


async def test_revisions_are_listed_and_kept_verbatim(api):
    await save(api, HELLO)
    second = HELLO.replace("# a comment kept verbatim", "# second revision, comment kept")
    await api.put("/v1/pipelines/hello", content=second, headers=YAML)

    listed = (await api.get("/v1/pipelines/hello/revisions")).json()
    assert listed["total"] == 2
    assert [r["number"] for r in listed["items"]] == [2, 1]
    assert listed["items"][1]["source_sha256"] == hashlib.sha256(HELLO.encode()).hexdigest()

    first = (await api.get("/v1/pipelines/hello/revisions/1")).json()
    assert first["source"] == HELLO
    assert first["pipeline"] == "hello"
    assert (await api.get("/v1/pipelines/hello/revisions/2")).json()["source"] == second

    missing = await api.get("/v1/pipelines/hello/revisions/3")
    assert missing.status_code == 404
    assert "latest is 2" in error_of(missing)["message"]
    assert (await api.get("/v1/pipelines/hello/revisions/0")).status_code == 422
    assert (await api.get("/v1/pipelines/nope/revisions")).status_code == 404


async def test_list_is_paginated_by_name(api):
    for name in ("c-pipe", "a-pipe", "b-pipe", "d-pipe", "e-pipe"):
        await save(api, HELLO.replace("name: hello", f"name: {name}"))
    first = (await api.get("/v1/pipelines", params={"limit": 2})).json()
    assert [p["name"] for p in first["items"]] == ["a-pipe", "b-pipe"]
    assert first["total"] == 5
    assert first["items"][0]["description"] == "Greets someone"
    assert first["items"][0]["revision"] == 1
    second = (await api.get("/v1/pipelines", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [p["name"] for p in second["items"]] == ["c-pipe", "d-pipe"]
    third = (await api.get("/v1/pipelines", params={"limit": 2, "cursor": second["next_cursor"]})).json()
    assert [p["name"] for p in third["items"]] == ["e-pipe"]
    assert third["next_cursor"] is None

    bad = await api.get("/v1/pipelines", params={"cursor": "!!not-a-cursor"})
    assert bad.status_code == 400
    assert error_of(bad)["code"] == "bad_request"
    assert (await api.get("/v1/pipelines", params={"limit": 0})).status_code == 422


async def test_delete_removes_the_pipeline_and_its_runs(api):
    await save(api, HELLO)
    run = (await api.post("/v1/pipelines/hello/runs", json={"wait": True})).json()
    response = await api.delete("/v1/pipelines/hello")
    assert response.status_code == 204
    assert response.content == b""
    assert (await api.get("/v1/pipelines/hello")).status_code == 404
    assert (await api.get(f"/v1/runs/{run['id']}")).status_code == 404
    assert (await api.delete("/v1/pipelines/hello")).status_code == 404
    # the name can be used again
    assert (await save(api, HELLO))["revision"] == 1


async def test_validate_reports_without_saving(api):
    ok = await api.post("/v1/validate", content=HELLO, headers=YAML)
    assert ok.status_code == 200
    assert ok.json() == {"valid": True, "problems": []}

    bad = await api.post("/v1/validate", json={"source": INVALID})
    assert bad.status_code == 200
    body = bad.json()
    assert body["valid"] is False
    codes = {p["code"] for p in body["problems"]}
    assert "unknown_key" in codes
    assert "unknown_connector" in codes
    assert "unknown_step" in codes
    assert (await api.get("/v1/pipelines/broken")).status_code == 404
    assert (await api.get("/v1/pipelines/hello")).status_code == 404


async def test_too_large_source_is_refused(make_settings, app_runner, api_key):
    from .helpers import client_for

    async with app_runner(make_settings(max_yaml_bytes=200)) as (app, _):
        async with client_for(app, api_key) as client:
            response = await client.post("/v1/pipelines", content=HELLO + "#" * 300, headers=YAML)
            assert response.status_code in (413, 422)
            error = error_of(response)
            assert error["code"] in ("pipeline_invalid", "payload_too_large")
