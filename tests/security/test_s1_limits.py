"""Input and output limits, each a clear 4xx or run/step error: request bodies on EVERY endpoint (413),
pipeline size and nesting, expression length, step and run output sizes."""

from __future__ import annotations

import pytest
from aiohttp import web

from tests.api.helpers import client_for, error_of, save, wait_finished

MAX_BODY = 4096


@pytest.fixture
def settings(make_settings):
    return make_settings(
        max_body_bytes=MAX_BODY,
        webhook_max_body_bytes=MAX_BODY,
        max_yaml_bytes=3000,
        step_output_max_bytes=2000,
        run_outputs_max_bytes=5000,
    )


async def test_every_endpoint_taking_a_body_refuses_an_oversized_one(app_state, api):
    app, _ = app_state
    document = app.openapi()
    oversized = b'{"pad": "' + b"x" * MAX_BODY + b'"}'
    checked = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if "requestBody" not in operation:
                continue
            url = path.replace("{", "").replace("}", "")  # any value: the limit answers before routing
            for streamed in (False, True):
                content = oversized if not streamed else _chunks(oversized)
                response = await api.request(
                    method, url, content=content, headers={"Content-Type": "application/json"}
                )
                assert response.status_code == 413, (method, path, streamed, response.text)
                assert error_of(response)["code"] == "payload_too_large"
            checked.append(f"{method.upper()} {path}")
    assert len(checked) >= 8, checked


async def _chunks(data: bytes):
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]


async def test_a_pipeline_over_the_size_limit_is_a_422_naming_the_limit(api):
    source = "version: 1\nname: big\n# " + "x" * 3200 + "\nsteps: []\n"
    response = await api.post("/v1/pipelines", content=source, headers={"Content-Type": "application/yaml"})
    assert response.status_code == 422
    problem = error_of(response)["details"][0]
    assert problem["code"] == "too_large"
    assert "the limit is 3000" in problem["message"]


async def test_a_pipeline_nesting_too_deep_is_a_422(api):
    nested = "[" * 70 + "]" * 70
    source = (
        f"version: 1\nname: deep\nsteps:\n  - id: a\n    uses: core.template\n    with: {{text: {nested}}}\n"
    )
    response = await api.post("/v1/pipelines", content=source, headers={"Content-Type": "application/yaml"})
    assert response.status_code == 422
    assert any("nests deeper" in p["message"] for p in error_of(response)["details"])


async def test_an_expression_over_the_length_limit_is_a_422(make_settings, app_runner, api_key):
    long_expression = " + ".join(["inputs.a"] * 600)  # ~6600 characters
    source = (
        "version: 1\nname: long\ninputs:\n  a: {type: string, default: x}\nsteps:\n  - id: t\n"
        f'    uses: core.template\n    with: {{text: "${{{{ {long_expression} }}}}"}}\n'
    )
    async with app_runner(make_settings()) as (app, _), client_for(app, api_key) as api:
        response = await api.post(
            "/v1/pipelines", content=source, headers={"Content-Type": "application/yaml"}
        )
    assert response.status_code == 422
    problems = error_of(response)["details"]
    assert problems[0]["code"] == "expression_syntax"
    assert "characters long; the limit is 4096" in problems[0]["message"]


@pytest.fixture
async def big_upstream(local_server):
    async def big(request: web.Request) -> web.Response:
        return web.json_response({"items": ["y" * 100] * int(request.query.get("n", "10"))})

    return await local_server({"GET /big": big})


async def test_a_large_step_output_is_stored_as_a_preview_and_large_run_outputs_fail_the_run(
    api, big_upstream
):
    source = """\
version: 1
name: large
inputs:
  base: {type: string}
  n: {type: integer}
steps:
  - id: fetch
    uses: http.get_json
    with: {url: "${{ inputs.base }}/big?n=${{ inputs.n }}"}
  - id: count
    uses: core.count
    with: {items: "${{ steps.fetch.output.items }}"}
outputs:
  count: ${{ steps.count.output }}
  items: ${{ steps.fetch.output.items }}
"""
    await save(api, source)

    small = (
        await api.post("/v1/pipelines/large/runs", json={"inputs": {"base": big_upstream, "n": 5}})
    ).json()
    small = await wait_finished(api, small["id"])
    assert small["status"] == "succeeded"
    assert small["outputs"]["count"] == 5

    # 30 items: the step output (~3.2 KB) is over the 2000 bytes of a step, under the 5000 of a run
    medium = (
        await api.post("/v1/pipelines/large/runs", json={"inputs": {"base": big_upstream, "n": 30}})
    ).json()
    medium = await wait_finished(api, medium["id"])
    assert medium["status"] == "succeeded"
    fetch = next(step for step in medium["steps"] if step["id"] == "fetch")
    assert fetch["output_truncated"] is True
    assert fetch["output"]["truncated"] is True
    assert medium["outputs"]["count"] == 30  # later steps saw the whole value
    assert len(medium["outputs"]["items"]) == 30

    # 60 items (~6.3 KB): the run's outputs are over the limit: the run fails, saying so
    large = (
        await api.post("/v1/pipelines/large/runs", json={"inputs": {"base": big_upstream, "n": 60}})
    ).json()
    large = await wait_finished(api, large["id"])
    assert large["status"] == "failed"
    assert large["outputs"] is None
    assert large["error"]["code"] == "outputs_too_large"
    assert "the limit is 5000" in large["error"]["message"]
    assert large["error"]["details"]["largest"] == "items"
