"""Published endpoint runs: executed in memory, recorded write-behind with their steps; a pipeline with a
concurrency limit takes the queued path."""

from __future__ import annotations

import pytest

from .helpers import client_for, error_of, save

DIRECT = """\
version: 1
name: direct
inputs:
  n: {type: integer, default: 1}
triggers:
  - endpoint: {format: json}
steps:
  - id: double
    uses: core.set
    with: {value: "${{ inputs.n * 2 }}"}
  - id: label
    uses: core.set
    with: {value: "${{ 'n=' + string(steps.double.output) }}"}
outputs:
  doubled: ${{ steps.double.output }}
  label: ${{ steps.label.output }}
"""

LIMITED = """\
version: 1
name: limited
concurrency: {limit: 1, on_conflict: queue}
triggers:
  - endpoint: {format: json}
steps:
  - id: a
    uses: core.set
    with: {value: 7}
outputs:
  a: ${{ steps.a.output }}
"""

FAILING = """\
version: 1
name: failing
triggers:
  - endpoint: {format: json}
steps:
  - id: boom
    uses: core.fail
    with: {message: no luck}
"""


@pytest.fixture
def settings(make_settings):
    return make_settings(public_rate_limit="")


async def test_endpoint_runs_are_recorded_with_their_steps(api, anon, app_state):
    await save(api, DIRECT)
    answers = [await anon.get("/v1/apps/default/direct", params={"n": n}) for n in range(1, 6)]
    assert [answer.status_code for answer in answers] == [200] * 5
    assert [answer.json()["doubled"] for answer in answers] == [2, 4, 6, 8, 10]
    run_ids = [answer.headers["x-mashpipe-run"] for answer in answers]
    listed = (await api.get("/v1/runs", params={"pipeline": "direct"})).json()
    assert listed["total"] == 5
    assert {item["id"] for item in listed["items"]} == set(run_ids)
    run = (await api.get(f"/v1/runs/{run_ids[2]}")).json()
    assert run["status"] == "succeeded"
    assert run["outputs"] == {"doubled": 6, "label": "n=6"}
    assert run["inputs"] == {"n": 3}
    assert run["trigger"] == {"kind": "endpoint", "query": {"n": "3"}}
    assert [(step["id"], step["status"], step["output"]) for step in run["steps"]] == [
        ("double", "succeeded", 6),
        ("label", "succeeded", "n=6"),
    ]
    assert app_state[1].endpoints.direct.recorder.lost == 0


async def test_a_failed_endpoint_run_is_502_and_recorded_failed(api, anon):
    await save(api, FAILING)
    response = await anon.get("/v1/apps/default/failing")
    assert response.status_code == 502
    run_id = error_of(response)["details"]["run_id"]
    run = (await api.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "failed"
    assert [step["status"] for step in run["steps"]] == ["failed"]


async def test_a_pipeline_with_a_concurrency_limit_runs_through_the_queue(api, anon, app_state):
    await save(api, LIMITED)
    recorder = app_state[1].endpoints.direct.recorder
    before = recorder.batches
    response = await anon.get("/v1/apps/default/limited")
    assert response.status_code == 200
    assert response.json() == {"a": 7}
    run = (await api.get(f"/v1/runs/{response.headers['x-mashpipe-run']}")).json()
    assert run["status"] == "succeeded"
    assert recorder.batches == before  # nothing went through the write-behind recorder
    assert recorder.pending == 0


async def test_shutdown_writes_the_pending_records(make_settings, app_runner, api_key):
    settings = make_settings(public_rate_limit="")
    async with app_runner(settings) as (app, state):
        async with client_for(app, api_key) as api, client_for(app) as anon:
            await save(api, DIRECT)
            state.endpoints.direct.recorder.delay = 3600.0  # nothing is written before the shutdown
            response = await anon.get("/v1/apps/default/direct", params={"n": 4})
            assert response.status_code == 200
            run_id = response.headers["x-mashpipe-run"]
            assert state.endpoints.direct.recorder.pending == 1
    async with app_runner(settings) as (app, state), client_for(app, api_key) as api:
        run = (await api.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "succeeded"
    assert run["outputs"] == {"doubled": 8, "label": "n=8"}
