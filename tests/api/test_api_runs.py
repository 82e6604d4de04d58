"""Runs through the API: wait or not, inputs, revisions, listing, cancellation, the wait cap."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from .helpers import HELLO, client_for, error_of, save, wait_finished

SLOW = """\
version: 1
name: slow
steps:
  - id: fetch
    uses: http.get_json
    with: {url: "URL/slow"}
    timeout: 60s
  - id: after
    uses: core.set
    with: {value: "${{ steps.fetch.output }}"}
outputs:
  value: ${{ steps.after.output }}
"""


@pytest.fixture
async def slow_upstream(local_server) -> AsyncIterator[tuple[str, asyncio.Event, asyncio.Event]]:
    """An upstream whose `/slow` answers only once `gate` is set; `entered` is set on each request."""
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        entered.set()
        await gate.wait()
        return web.json_response({"ok": True})

    base = await local_server({"GET /slow": slow})
    try:
        yield base, gate, entered
    finally:
        gate.set()


async def wait_for_status(client, run_id: str, status: str, step: str | None = None) -> Any:
    for _ in range(500):
        run = (await client.get(f"/v1/runs/{run_id}")).json()
        if run["status"] == status and (
            step is None or any(s["id"] == step and s["status"] == "running" for s in run["steps"])
        ):
            return run
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} never reached {status}: {run}")


async def test_run_with_wait_is_201_with_outputs_and_steps(api):
    await save(api, HELLO)
    response = await api.post("/v1/pipelines/hello/runs", json={"inputs": {"name": "Ada"}, "wait": True})
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["status"] == "succeeded"
    assert run["pipeline"] == "hello"
    assert run["revision"] == 1
    assert run["inputs"] == {"name": "Ada", "times": 1}
    assert run["outputs"] == {"greeting": "Hello, Ada!", "times": 1}
    assert run["trigger"] == {"kind": "manual"}
    assert run["trigger_kind"] == "manual"
    assert run["error"] is None
    assert run["started_at"]
    assert run["finished_at"]
    assert run["duration_ms"] >= 0
    (step,) = run["steps"]
    assert step["id"] == "greeting"
    assert step["status"] == "succeeded"
    assert step["attempts"] == 1
    assert step["output"] == "Hello, Ada!"
    assert step["error"] is None
    assert step["started_at"]
    assert step["finished_at"]
    assert step["duration_ms"] >= 0
    assert step["logs"] == []


async def test_run_without_wait_is_202_queued_then_finishes(api):
    await save(api, HELLO)
    response = await api.post("/v1/pipelines/hello/runs", json={"inputs": {"name": "Bo"}})
    assert response.status_code == 202
    run = response.json()
    assert run["status"] in ("queued", "running", "succeeded")
    finished = await wait_finished(api, run["id"])
    assert finished["status"] == "succeeded"
    assert finished["outputs"]["greeting"] == "Hello, Bo!"


async def test_run_without_body_uses_the_defaults(api):
    await save(api, HELLO)
    response = await api.post("/v1/pipelines/hello/runs")
    assert response.status_code == 202, response.text
    finished = await wait_finished(api, response.json()["id"])
    assert finished["outputs"] == {"greeting": "Hello, world!", "times": 1}


async def test_inputs_are_coerced_and_checked(api):
    await save(api, HELLO)
    ok = await api.post("/v1/pipelines/hello/runs", json={"inputs": {"times": "3"}, "wait": True})
    assert ok.status_code == 201, ok.text
    assert ok.json()["inputs"]["times"] == 3

    bad = await api.post("/v1/pipelines/hello/runs", json={"inputs": {"times": 0, "colour": "red"}})
    assert bad.status_code == 422
    error = error_of(bad)
    assert error["code"] == "validation_failed"
    assert {d["input"] for d in error["details"]} == {"times", "colour"}
    assert (await api.get("/v1/runs")).json()["total"] == 1  # no run was recorded for the bad request


async def test_unknown_pipeline_or_revision_is_404(api):
    assert (await api.post("/v1/pipelines/nope/runs", json={})).status_code == 404
    await save(api, HELLO)
    response = await api.post("/v1/pipelines/hello/runs", json={"revision": 7})
    assert response.status_code == 404
    assert "revision 7" in error_of(response)["message"]
    assert (await api.post("/v1/pipelines/hello/runs", json={"revision": 0})).status_code == 422


async def test_an_older_revision_can_be_run(api):
    await save(api, HELLO)
    changed = HELLO.replace("Hello, ", "Bonjour, ")
    await api.put("/v1/pipelines/hello", content=changed, headers={"Content-Type": "application/yaml"})

    latest = (await api.post("/v1/pipelines/hello/runs", json={"wait": True})).json()
    assert latest["revision"] == 2
    assert latest["outputs"]["greeting"] == "Bonjour, world!"
    old = (await api.post("/v1/pipelines/hello/runs", json={"wait": True, "revision": 1})).json()
    assert old["revision"] == 1
    assert old["outputs"]["greeting"] == "Hello, world!"


async def test_a_failing_run_records_the_failed_step(api):
    source = """\
version: 1
name: failing
steps:
  - id: first
    uses: core.set
    with: {value: [1, 2]}
  - id: boom
    uses: core.fail
    with: {message: "stop here"}
    needs: [first]
"""
    await save(api, source)
    run = (await api.post("/v1/pipelines/failing/runs", json={"wait": True})).json()
    assert run["status"] == "failed"
    assert run["error"]["message"]
    steps = {s["id"]: s for s in run["steps"]}
    assert steps["first"]["status"] == "succeeded"
    assert steps["first"]["output"] == [1, 2]
    assert steps["boom"]["status"] == "failed"
    assert "stop here" in steps["boom"]["error"]["message"]


async def test_list_runs_filters_and_pages(api):
    await save(api, HELLO)
    await save(api, HELLO.replace("name: hello", "name: other"))
    ids = []
    for n in range(3):
        run = (
            await api.post("/v1/pipelines/hello/runs", json={"inputs": {"times": n + 1}, "wait": True})
        ).json()
        ids.append(run["id"])
    other_run = (await api.post("/v1/pipelines/other/runs", json={"wait": True})).json()

    everything = (await api.get("/v1/runs")).json()
    assert everything["total"] == 4
    assert [r["id"] for r in everything["items"]] == [other_run["id"], *reversed(ids)]
    item = everything["items"][0]
    assert set(item) >= {"id", "pipeline", "revision", "status", "created_at", "duration_ms", "error"}
    assert "steps" not in item

    page1 = (await api.get("/v1/runs", params={"pipeline": "hello", "limit": 2})).json()
    assert page1["total"] == 3
    assert [r["id"] for r in page1["items"]] == [ids[2], ids[1]]
    page2 = (
        await api.get("/v1/runs", params={"pipeline": "hello", "limit": 2, "cursor": page1["next_cursor"]})
    ).json()
    assert [r["id"] for r in page2["items"]] == [ids[0]]
    assert page2["next_cursor"] is None

    succeeded = (await api.get("/v1/runs", params={"status": "succeeded"})).json()
    assert succeeded["total"] == 4
    failed = (await api.get("/v1/runs", params={"status": "failed"})).json()
    assert failed == {"items": [], "total": 0, "next_cursor": None, "total_exact": True}
    assert (await api.get("/v1/runs", params={"pipeline": "nope"})).json()["total"] == 0
    assert (await api.get("/v1/runs", params={"cursor": "garbage"})).status_code == 400
    assert (await api.get("/v1/runs", params={"limit": 500})).status_code == 422


async def test_unknown_run_is_404(api):
    assert (await api.get("/v1/runs/0123456789abcdef0123456789abcdef")).status_code == 404
    assert (await api.post("/v1/runs/0123456789abcdef0123456789abcdef/cancel")).status_code == 404


async def test_cancel_a_running_run(api, slow_upstream):
    base, _gate, entered = slow_upstream
    await save(api, SLOW.replace("URL", base))
    run = (await api.post("/v1/pipelines/slow/runs", json={})).json()
    await entered.wait()
    await wait_for_status(api, run["id"], "running", step="fetch")

    response = await api.post(f"/v1/runs/{run['id']}/cancel")
    assert response.status_code == 200
    cancelled = await wait_finished(api, run["id"])
    assert cancelled["status"] == "cancelled"
    steps = {s["id"]: s for s in cancelled["steps"]}
    assert steps["fetch"]["status"] == "cancelled"
    assert "after" not in steps or steps["after"]["status"] in ("cancelled", "skipped", "pending")

    again = await api.post(f"/v1/runs/{run['id']}/cancel")
    assert again.status_code == 409
    assert error_of(again)["code"] == "conflict"


async def test_cancel_a_queued_run_at_once(make_settings, app_runner, api_key, slow_upstream):
    base, gate, entered = slow_upstream
    async with app_runner(make_settings(max_concurrent_runs=1)) as (app, _):
        async with client_for(app, api_key) as api:
            await save(api, SLOW.replace("URL", base))
            first = (await api.post("/v1/pipelines/slow/runs", json={})).json()
            await entered.wait()
            second = (await api.post("/v1/pipelines/slow/runs", json={})).json()
            assert (await api.get(f"/v1/runs/{second['id']}")).json()["status"] == "queued"

            response = await api.post(f"/v1/runs/{second['id']}/cancel")
            assert response.status_code == 200
            cancelled = response.json()
            assert cancelled["status"] == "cancelled"
            assert cancelled["error"]["code"] == "cancelled"
            assert cancelled["steps"] == []

            gate.set()
            done = await wait_finished(api, first["id"])
            assert done["status"] == "succeeded"
            assert done["outputs"] == {"value": {"ok": True}}
            # the cancelled run never started
            assert (await api.get(f"/v1/runs/{second['id']}")).json()["started_at"] is None


async def test_wait_is_capped_and_then_202(make_settings, app_runner, api_key, slow_upstream):
    base, gate, _entered = slow_upstream
    async with app_runner(make_settings(run_wait_max_seconds=0.2)) as (app, _):
        async with client_for(app, api_key) as api:
            await save(api, SLOW.replace("URL", base))
            response = await api.post("/v1/pipelines/slow/runs", json={"wait": True})
            assert response.status_code == 202
            assert response.json()["status"] in ("queued", "running")
            gate.set()
            assert (await wait_finished(api, response.json()["id"]))["status"] == "succeeded"


async def test_many_waiting_requests_do_not_starve_the_runs_of_connections(api):
    # Each waiting request must give its pooled connection back before it waits: 40 waiters are more
    # than the pool holds (5 + 10 overflow), and the runs they wait for need connections to finish.
    await save(api, HELLO)
    responses = await asyncio.gather(
        *[
            api.post("/v1/pipelines/hello/runs", json={"inputs": {"times": n + 1}, "wait": True})
            for n in range(40)
        ]
    )
    assert [r.status_code for r in responses] == [201] * 40
    assert sorted(r.json()["outputs"]["times"] for r in responses) == list(range(1, 41))


async def test_deleting_a_pipeline_stops_its_running_runs(app_state, api, slow_upstream, caplog):
    _, state = app_state
    base, _gate, entered = slow_upstream
    await save(api, SLOW.replace("URL", base))
    run = (await api.post("/v1/pipelines/slow/runs", json={})).json()
    await entered.wait()
    await wait_for_status(api, run["id"], "running", step="fetch")
    with caplog.at_level(logging.INFO):
        assert (await api.delete("/v1/pipelines/slow")).status_code == 204
        await state.queue.join()  # the upstream never answers: only the stop ends the run
    assert (await api.get(f"/v1/runs/{run['id']}")).status_code == 404
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
