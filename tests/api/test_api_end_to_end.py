"""End to end: a real upstream HTTP server on 127.0.0.1, a pipeline saved and run through the API."""

from __future__ import annotations

from aiohttp import web

from .helpers import save, wait_finished

ITEMS = [
    {"id": 1, "title": "alpha", "score": 5},
    {"id": 2, "title": "beta", "score": 42},
    {"id": 3, "title": "gamma", "score": 17},
    {"id": 4, "title": "delta", "score": 99},
]

PIPELINE = """\
version: 1
name: e2e-digest
description: fetch, filter, map and sort
inputs:
  min_score: {type: integer, default: 10}
steps:
  - id: fetch
    uses: http.get_json
    with:
      url: BASE/items
      query: {page: "1"}
  - id: good
    uses: core.filter
    with:
      items: ${{ steps.fetch.output.items }}
      where: item.score >= inputs.min_score
  - id: shaped
    uses: core.map
    with:
      items: ${{ steps.good.output }}
      to: {title: "${{ upper(item.title) }}", score: "${{ item.score }}"}
  - id: ranked
    uses: core.sort
    with: {items: "${{ steps.shaped.output }}", by: item.score, order: desc}
outputs:
  top: ${{ steps.ranked.output }}
  count: ${{ size(steps.ranked.output) }}
"""


async def test_pipeline_calling_a_real_upstream_through_the_api(api, local_server):
    seen: list[dict[str, str]] = []

    async def items(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response({"items": ITEMS})

    base = await local_server({"GET /items": items})
    await save(api, PIPELINE.replace("BASE", base))

    response = await api.post("/v1/pipelines/e2e-digest/runs", json={"inputs": {"min_score": "15"}})
    assert response.status_code == 202
    run = await wait_finished(api, response.json()["id"])

    assert run["status"] == "succeeded", run
    assert seen == [{"page": "1"}]
    expected_top = [
        {"title": "DELTA", "score": 99},
        {"title": "BETA", "score": 42},
        {"title": "GAMMA", "score": 17},
    ]
    assert run["outputs"] == {"top": expected_top, "count": 3}

    steps = {step["id"]: step for step in run["steps"]}
    assert set(steps) == {"fetch", "good", "shaped", "ranked"}
    assert all(step["status"] == "succeeded" for step in steps.values())
    assert steps["fetch"]["output"] == {"items": ITEMS}
    assert steps["good"]["output"] == [ITEMS[1], ITEMS[2], ITEMS[3]]
    assert steps["shaped"]["output"] == [
        {"title": "BETA", "score": 42},
        {"title": "GAMMA", "score": 17},
        {"title": "DELTA", "score": 99},
    ]
    assert steps["ranked"]["output"] == expected_top
    # data dependencies order the steps
    assert steps["fetch"]["finished_at"] <= steps["good"]["started_at"]
    assert steps["good"]["finished_at"] <= steps["shaped"]["started_at"]
    assert steps["shaped"]["finished_at"] <= steps["ranked"]["started_at"]


async def test_upstream_errors_fail_the_step_with_a_clear_error(api, local_server):
    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"error": "nope"}, status=404)

    base = await local_server({"GET /items": missing})
    await save(api, PIPELINE.replace("BASE", base))
    run = (await api.post("/v1/pipelines/e2e-digest/runs", json={"wait": True})).json()
    assert run["status"] == "failed"
    fetch = next(step for step in run["steps"] if step["id"] == "fetch")
    assert fetch["status"] == "failed"
    assert "404" in fetch["error"]["message"]


async def test_egress_to_loopback_is_refused_without_the_allowlist(
    make_settings, app_runner, api_key, local_server
):
    from .helpers import client_for

    async def items(request: web.Request) -> web.Response:
        return web.json_response({"items": ITEMS})

    base = await local_server({"GET /items": items})
    async with app_runner(make_settings(egress_allow="")) as (app, _):
        async with client_for(app, api_key) as client:
            await save(client, PIPELINE.replace("BASE", base))
            run = (await client.post("/v1/pipelines/e2e-digest/runs", json={"wait": True})).json()
    assert run["status"] == "failed"
    fetch = next(step for step in run["steps"] if step["id"] == "fetch")
    assert fetch["error"]["code"] == "egress_denied"
