"""Account isolation, swept over EVERY endpoint of the OpenAPI document.

Account A owns one resource of each kind (pipeline with a revision and a run, API key, secret, hook,
private app). Account B then calls every operation of the API with its own key, path parameters filled
with A's real ids: every one answers 404, lists show nothing of A, and A's resources are unchanged.

The sweep reads the routes from the app's OpenAPI document, so a new endpoint is swept as soon as it
exists: a path parameter the sweep cannot fill fails the test, asking for a line in ``FILLERS`` (or, for
an endpoint that is public by design, in ``NOT_ACCOUNT_SCOPED`` with the reason).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import client_for, save, wait_finished

PIPELINE = "alpha-of-a"
SECRET = "SECRET_OF_A"
SECRET_VALUE = "value-of-a-secret-0001"
SOURCE = f"""\
version: 1
name: {PIPELINE}
description: belongs to account A
triggers:
  - webhook: {{}}
  - endpoint: {{public: false}}
steps:
  - id: hello
    uses: core.template
    with: {{text: "hello from A"}}
outputs:
  said: ${{{{ steps.hello.output }}}}
"""

NOT_ACCOUNT_SCOPED: dict[tuple[str, str], str] = {
    (
        "post",
        "/v1/hooks/{hook_id}",
    ): "the hook id is the credential (a capability URL): anyone holding it may call",
    ("get", "/v1/connectors/{key}"): "the installed connectors are one catalog shared by every account",
}
"""Operations that are not scoped by account on purpose, with the reason."""

CREATES_IN_CALLER: dict[tuple[str, str], dict[str, Any]] = {
    ("put", "/v1/pipelines/{name}"): {
        "content": SOURCE.replace("belongs to account A", "B's own"),
        "headers": {"Content-Type": "application/yaml"},
    },
    ("put", "/v1/secrets/{name}"): {"json": {"value": "b-writes-its-own"}},
}

CONNECTION = "conn-of-a"
"""Upserts: with B's key they create B's own resource of that name and must leave A's untouched."""


class AccountA:
    """A's resources, and what B must never see."""

    def __init__(self) -> None:
        self.ids: dict[str, Any] = {}

    def markers(self) -> list[str]:
        """A's values that are A's alone (not the account name `default` or the shared catalog)."""
        private = (
            "pipeline",
            "run_id",
            "key_id",
            "key_prefix",
            "secret",
            "real_hook_id",
            "description",
            "connection",
        )
        return [str(self.ids[k]) for k in private if k in self.ids]


FILLERS: dict[tuple[str, str], str] = {
    ("pipelines", "name"): "pipeline",
    ("pipelines", "number"): "revision",
    ("runs", "run_id"): "run_id",
    ("keys", "key_id"): "key_id",
    ("secrets", "name"): "secret",
    ("hooks", "hook_id"): "hook_id",
    ("apps", "account"): "account_name",
    ("apps", "name"): "pipeline",
    ("connectors", "key"): "connector",
    ("connections", "name"): "connection",
}
"""(first segment after /v1, path parameter) -> the key of A's id in ``AccountA.ids``."""

QUERY_FILLERS = {"pipeline": "pipeline"}
"""Query parameters of list operations that name one of A's resources."""


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def example(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A small valid instance of a JSON Schema of the document (required fields only)."""
    schema = _resolve(document, schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if _resolve(document, o).get("type") != "null"]
            return example(document, options[0]) if options else None
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: example(document, properties[name]) for name in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "number":
        return 1
    if kind == "boolean":
        return False
    return "x" * max(int(schema.get("minLength", 1)), 1)


def request_body(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    """httpx keyword arguments for the operation's body (a valid one: validation must not answer first)."""
    body = operation.get("requestBody")
    if not body:
        return {}
    content = body.get("content", {})
    if "application/json" in content:
        return {"json": example(document, content["application/json"].get("schema", {}))}
    if "application/yaml" in content:
        return {"content": SOURCE, "headers": {"Content-Type": "application/yaml"}}
    return {"content": b"{}", "headers": {"Content-Type": next(iter(content), "application/json")}}


def fill(path: str, parameters: list[dict[str, Any]], a: AccountA) -> str:
    segment = path.split("/")[2]
    for parameter in parameters:
        if parameter.get("in") != "path":
            continue
        name = parameter["name"]
        key = FILLERS.get((segment, name))
        assert key is not None, (
            f"the sweep cannot fill {{{name}}} of {path}: add A's resource to FILLERS in {__file__} "
            "(or the operation to NOT_ACCOUNT_SCOPED with the reason it is not scoped by account)"
        )
        assert key in a.ids, f"account A has no {key} yet: create one in the `account_a` fixture"
        path = path.replace("{" + name + "}", str(a.ids[key]))
    return path


@pytest.fixture
async def account_a(app_state, api) -> AccountA:
    a = AccountA()
    assert (await api.put(f"/v1/secrets/{SECRET}", json={"value": SECRET_VALUE})).status_code == 201
    saved = await save(api, SOURCE)
    run = (await api.post(f"/v1/pipelines/{PIPELINE}/runs", json={"wait": True})).json()
    run = await wait_finished(api, run["id"])
    assert run["status"] == "succeeded", run
    key = (await api.post("/v1/keys", json={"name": "key-of-a"})).json()
    a.ids.update(
        pipeline=PIPELINE,
        revision=1,
        run_id=run["id"],
        key_id=key["id"],
        key_prefix=key["prefix"],
        secret=SECRET,
        account_name="default",
        connector="http",
        description="belongs to account A",
    )
    if "/v1/connections" in app_state[0].openapi()["paths"]:
        created = await api.post(
            "/v1/connections",
            json={
                "name": CONNECTION,
                "connector": "openai",
                "kind": "bearer",
                "credentials": {"token": SECRET_VALUE},
            },
        )
        assert created.status_code == 201, created.text
        a.ids["connection"] = CONNECTION
    hooks = saved.get("hooks") or []
    if hooks:
        a.ids["hook_id"] = a.ids["real_hook_id"] = hooks[0]["id"]
    else:  # hooks not shown in the pipeline's view: any id will do for the exempt hook route
        a.ids["hook_id"] = "no-hook-view"
    return a


async def test_every_endpoint_answers_404_for_another_accounts_resources(app_state, api, other, account_a):
    app, state = app_state
    document = app.openapi()
    # lists first (before B creates same-named resources of its own): nothing of A shows, even by name
    for path, methods in document["paths"].items():
        operation = methods.get("get")
        if operation is None or "{" in path:
            continue
        query = {
            p["name"]: account_a.ids[QUERY_FILLERS[p["name"]]]
            for p in operation.get("parameters", [])
            if p.get("in") == "query" and p["name"] in QUERY_FILLERS
        }
        for params in ({}, query) if query else ({},):
            response = await other.get(path, params=params)
            for marker in account_a.markers():
                assert marker not in response.text, (path, params, marker)

    swept: list[str] = []
    operations = [
        (method, path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        if (method, path) not in NOT_ACCOUNT_SCOPED
        and any(p.get("in") == "path" for p in operation.get("parameters", []))
    ]
    # upserts last: the resource they create for B would otherwise answer B's later calls
    operations.sort(key=lambda item: (item[0], item[1]) in CREATES_IN_CALLER)
    for method, path, operation in operations:
        what = f"{method.upper()} {path}"
        url = fill(path, operation.get("parameters", []), account_a)
        if (method, path) in CREATES_IN_CALLER:
            response = await other.request(method, url, **CREATES_IN_CALLER[(method, path)])
            assert response.status_code in (200, 201), (what, response.text)
        else:
            response = await other.request(method, url, **request_body(document, operation))
            assert response.status_code == 404, (what, response.status_code, response.text)
            assert response.json()["error"]["code"] == "not_found", what
        for marker in account_a.markers():
            if marker not in url:
                assert marker not in response.text, (what, marker)
        swept.append(what)
    assert len(swept) >= 10, swept  # the sweep really covered the API

    # and A still has everything, unchanged
    pipeline = await api.get(f"/v1/pipelines/{PIPELINE}")
    assert pipeline.status_code == 200
    assert pipeline.json()["revision"] == 1
    assert pipeline.json()["source"] == SOURCE
    assert (await api.get(f"/v1/runs/{account_a.ids['run_id']}")).json()["status"] == "succeeded"
    keys = {k["id"]: k for k in (await api.get("/v1/keys")).json()["items"]}
    assert keys[account_a.ids["key_id"]]["status"] == "active"
    assert SECRET in [s["name"] for s in (await api.get("/v1/secrets")).json()["items"]]
    async with state.db.session() as session:
        values = await state.secrets.resolve(session, state.bootstrap.account_id, {SECRET})
    assert values == {SECRET: SECRET_VALUE}


async def test_the_sweep_refuses_a_path_parameter_it_cannot_fill():
    with pytest.raises(AssertionError, match="cannot fill"):
        fill("/v1/gizmos/{gizmo_id}", [{"in": "path", "name": "gizmo_id"}], AccountA())


async def test_without_a_key_every_scoped_endpoint_is_401(app_state, account_a):
    app, _ = app_state
    document = app.openapi()
    async with client_for(app) as anon:
        for path, methods in document["paths"].items():
            for method, operation in methods.items():
                if operation.get("security") != [{"ApiKey": []}] or (method, path) in NOT_ACCOUNT_SCOPED:
                    continue
                if path.startswith("/v1/apps/"):
                    continue  # public apps need no key; a private one is checked in the sweep above
                url = fill(path, operation.get("parameters", []), account_a)
                response = await anon.request(method, url, **request_body(document, operation))
                assert response.status_code == 401, (method, path, response.status_code)
