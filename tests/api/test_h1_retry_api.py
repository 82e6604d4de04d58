"""`POST /v1/runs/{id}/retry`: a new attempt of a failed or cancelled run that reuses the steps that
succeeded (the upstream is not called again for them); 409 for a run that succeeded or is in progress."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .helpers import error_of, save, wait_finished

SOURCE = """\
version: 1
name: flaky
inputs:
  city: {{type: string, default: Paris}}
steps:
  - id: fetch
    uses: http.get_json
    with: {{url: "{base}/fetch", query: {{city: "${{{{ inputs.city }}}}"}}}}
  - id: enrich
    uses: http.get_json
    with: {{url: "{base}/enrich/${{{{ steps.fetch.output.n }}}}"}}
  - id: label
    uses: core.template
    with: {{text: "${{{{ inputs.city }}}}: ${{{{ steps.enrich.output.n }}}}"}}
outputs:
  label: ${{{{ steps.label.output }}}}
"""


class Upstream:
    """`/fetch` always answers; `/enrich` answers 404 (not retried) until `fixed`."""

    def __init__(self) -> None:
        self.hits = {"fetch": 0, "enrich": 0}
        self.fixed = False

    async def fetch(self, request: web.Request) -> web.Response:
        self.hits["fetch"] += 1
        return web.json_response({"n": 7})

    async def enrich(self, request: web.Request) -> web.Response:
        self.hits["enrich"] += 1
        if not self.fixed:
            return web.json_response({"error": "not yet"}, status=404)
        return web.json_response({"n": int(request.match_info["n"]) * 6})


async def failed_run(api, local_server) -> tuple[Upstream, dict[str, Any]]:
    upstream = Upstream()
    base = await local_server({"GET /fetch": upstream.fetch, "GET /enrich/{n}": upstream.enrich})
    await save(api, SOURCE.format(base=base))
    response = await api.post("/v1/pipelines/flaky/runs", json={"inputs": {"city": "Oslo"}, "wait": True})
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["status"] == "failed"
    assert run["attempt"] == 1
    assert run["retry_of"] is None
    return upstream, run


async def test_retry_reuses_what_succeeded_and_runs_the_rest(api, local_server):
    upstream, run = await failed_run(api, local_server)
    assert upstream.hits == {"fetch": 1, "enrich": 1}
    upstream.fixed = True

    response = await api.post(f"/v1/runs/{run['id']}/retry", json={"wait": True})
    assert response.status_code == 201, response.text
    retry = response.json()
    assert retry["id"] != run["id"]
    assert retry["status"] == "succeeded"
    assert retry["attempt"] == 2
    assert retry["retry_of"] == run["id"]
    assert retry["revision"] == run["revision"]
    assert retry["inputs"] == {"city": "Oslo"}
    assert retry["trigger"] == run["trigger"]
    assert retry["outputs"] == {"label": "Oslo: 42"}
    assert upstream.hits == {"fetch": 1, "enrich": 2}  # `fetch` reused, not called again
    steps = {step["id"]: step for step in retry["steps"]}
    assert steps["fetch"]["logs"][-1] == "reused from an earlier attempt"
    assert steps["fetch"]["output"] == {"n": 7}
    assert steps["enrich"]["status"] == "succeeded"

    # the failed run stays as it was; both are in the history
    original = (await api.get(f"/v1/runs/{run['id']}")).json()
    assert original["status"] == "failed"
    listed = (await api.get("/v1/runs", params={"pipeline": "flaky"})).json()
    assert [item["id"] for item in listed["items"]] == [retry["id"], run["id"]]
    assert [item["attempt"] for item in listed["items"]] == [2, 1]


async def test_a_succeeded_run_cannot_be_retried(api, local_server):
    upstream, run = await failed_run(api, local_server)
    upstream.fixed = True
    retry = (await api.post(f"/v1/runs/{run['id']}/retry", json={"wait": True})).json()
    response = await api.post(f"/v1/runs/{retry['id']}/retry")
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "conflict"
    assert error["message"] == f"run {retry['id']} succeeded: there is nothing to retry"
    assert error["details"] == {"status": "succeeded"}


async def test_a_queued_run_cannot_be_retried(api, app_state, local_server):
    await failed_run(api, local_server)
    _, state = app_state
    queued = await state.runs.create_run(
        account_id=state.bootstrap.account_id, pipeline_name="flaky", inputs={}
    )  # recorded, not handed to the queue: it stays queued
    response = await api.post(f"/v1/runs/{queued.id}/retry")
    assert response.status_code == 409
    assert "is still queued" in error_of(response)["message"]


async def test_retry_of_a_retry_counts_attempts_and_without_wait_answers_202(api, local_server):
    upstream, run = await failed_run(api, local_server)
    second = await api.post(f"/v1/runs/{run['id']}/retry")
    assert second.status_code == 202
    second_run = await wait_finished(api, second.json()["id"])
    assert second_run["status"] == "failed"
    assert second_run["attempt"] == 2
    upstream.fixed = True
    third = (await api.post(f"/v1/runs/{second_run['id']}/retry", json={"wait": True})).json()
    assert third["attempt"] == 3
    assert third["retry_of"] == second_run["id"]
    assert third["status"] == "succeeded"
    assert upstream.hits["fetch"] == 1


async def test_a_cancelled_run_can_be_retried(api, app_state, local_server):
    upstream, _ = await failed_run(api, local_server)
    upstream.fixed = True
    _, state = app_state
    queued = await state.runs.create_run(
        account_id=state.bootstrap.account_id, pipeline_name="flaky", inputs={}
    )
    cancelled = await api.post(f"/v1/runs/{queued.id}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    retry = (await api.post(f"/v1/runs/{queued.id}/retry", json={"wait": True})).json()
    assert retry["status"] == "succeeded"
    assert retry["outputs"] == {"label": "Paris: 42"}


async def test_retry_of_an_unknown_or_foreign_run_is_404(api, other, local_server):
    _, run = await failed_run(api, local_server)
    assert (await api.post("/v1/runs/nope/retry")).status_code == 404
    response = await other.post(f"/v1/runs/{run['id']}/retry")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


async def test_retry_refuses_unknown_body_fields(api, local_server):
    _, run = await failed_run(api, local_server)
    response = await api.post(f"/v1/runs/{run['id']}/retry", json={"wait": True, "from_step": "x"})
    assert response.status_code == 422
