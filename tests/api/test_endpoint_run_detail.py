"""What a published endpoint's run keeps: step outputs of succeeded runs as a preview beyond
MASHPIPE_ENDPOINT_STEP_OUTPUT_MAX_BYTES, failed runs everything (up to the usual step output cap)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from aiohttp import web

from .helpers import client_for, save

ITEMS = [{"id": n, "title": f"Story {n}", "score": n} for n in range(1, 41)]

SOURCE = """\
version: 1
name: detail
triggers:
  - endpoint: {public: true}
steps:
  - id: fetch
    uses: http.get_json
    with: {url: "UPSTREAM/items"}
  - id: best
    uses: core.sort
    with: {items: "${{ steps.fetch.output }}", by: item.score, order: desc, limit: 1}
  - id: check
    uses: core.fail
    if: size(steps.fetch.output) > 100
    with: {message: too many}
outputs:
  best: ${{ steps.best.output }}
"""


@pytest.fixture
async def upstream(local_server: Any) -> str:
    async def items(request: web.Request) -> web.Response:
        count = int(request.query.get("count", len(ITEMS)))
        return web.json_response(
            [*ITEMS, *({"id": n, "score": 0} for n in range(1000, 1000 + count))][:count]
        )

    return await local_server({"GET /items": items})


async def steps_of(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    return {step["id"]: step for step in response.json()["steps"]}


async def test_a_succeeded_endpoint_run_keeps_a_preview_of_its_large_step_outputs(api, anon, upstream):
    await save(api, SOURCE.replace("UPSTREAM", upstream))
    answer = await anon.get("/v1/apps/default/detail")
    assert answer.status_code == 200, answer.text
    steps = await steps_of(api, answer.headers["x-mashpipe-run"])
    fetch = steps["fetch"]
    assert fetch["status"] == "succeeded"
    assert fetch["output_truncated"] is True
    assert fetch["output"]["truncated"] is True
    assert fetch["output"]["size"] > 1000
    assert len(fetch["output"]["preview"]) == 256
    assert steps["best"]["output"] == [ITEMS[-1]]  # small enough: kept whole
    assert steps["best"]["output_truncated"] is False
    run = (await api.get(f"/v1/runs/{answer.headers['x-mashpipe-run']}")).json()
    assert run["outputs"] == {"best": [ITEMS[-1]]}  # the answer itself is always kept


async def test_a_failed_endpoint_run_keeps_its_step_outputs(api, anon, upstream):
    await save(api, SOURCE.replace("UPSTREAM", upstream).replace("/items", "/items?count=150"))
    answer = await anon.get("/v1/apps/default/detail")
    assert answer.status_code == 502
    run_id = answer.json()["error"]["details"]["run_id"]
    steps = await steps_of(api, run_id)
    assert steps["check"]["status"] == "failed"
    assert steps["fetch"]["output_truncated"] is False
    assert len(steps["fetch"]["output"]) == 150


async def test_the_limit_is_a_setting(make_settings, app_runner, api_key, upstream):
    settings = make_settings(endpoint_step_output_max_bytes=1_000_000)
    async with app_runner(settings) as (app, _), client_for(app, api_key) as api:
        await save(api, SOURCE.replace("UPSTREAM", upstream))
        answer = await api.get("/v1/apps/default/detail")
        steps = await steps_of(api, answer.headers["x-mashpipe-run"])
    assert steps["fetch"]["output_truncated"] is False
    assert steps["fetch"]["output"] == ITEMS


async def test_a_succeeded_endpoint_run_shows_every_step_in_the_order_they_ran(api, anon, upstream):
    # A succeeded endpoint run is recorded in one row (runs.step_states), a failed one with step rows
    # (the test above): the API shows both the same way.
    await save(api, SOURCE.replace("UPSTREAM", upstream))
    answer = await anon.get("/v1/apps/default/detail")
    assert answer.status_code == 200, answer.text
    run = (await api.get(f"/v1/runs/{answer.headers['x-mashpipe-run']}")).json()
    assert [step["id"] for step in run["steps"]] == ["fetch", "best", "check"]
    assert [step["status"] for step in run["steps"]] == ["succeeded", "succeeded", "skipped"]
    fetch, best, _check = run["steps"]
    assert fetch["attempts"] == 1
    assert fetch["started_at"] <= fetch["finished_at"] <= best["started_at"]
    assert isinstance(fetch["duration_ms"], int)
    assert fetch["error"] is None
    assert isinstance(fetch["logs"], list)
