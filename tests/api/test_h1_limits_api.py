"""Concurrency limits seen from the API: a run over a `skip` limit is answered already finished
(`cancelled`, `concurrency_skipped`) and stays in the history; a `queue` run waits its turn."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .helpers import save, wait_finished

SOURCE = """\
version: 1
name: {name}
concurrency: {{limit: 1, on_conflict: {mode}}}
steps:
  - id: wait
    uses: http.get_json
    with: {{url: "{base}/hold"}}
outputs:
  done: ${{{{ steps.wait.output.ok }}}}
"""


class Hold:
    """`/hold` answers once the test lets it."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        self.entered.set()
        await self.release.wait()
        return web.json_response({"ok": True})


async def test_skip_and_queue_through_the_api(api, local_server):
    hold = Hold()
    base = await local_server({"GET /hold": hold.handle})
    await save(api, SOURCE.format(name="skipper", mode="skip", base=base))
    await save(api, SOURCE.format(name="waiter", mode="queue", base=base))
    try:
        first = (await api.post("/v1/pipelines/skipper/runs", json={})).json()
        await hold.entered.wait()
        response = await api.post("/v1/pipelines/skipper/runs", json={"wait": True})
        assert response.status_code == 201  # finished at once: nothing to wait for
        skipped = response.json()
        assert skipped["status"] == "cancelled"
        assert skipped["error"]["code"] == "concurrency_skipped"
        assert skipped["started_at"] is None
        assert skipped["steps"] == []

        queued_first = (await api.post("/v1/pipelines/waiter/runs", json={})).json()
        queued_second = (await api.post("/v1/pipelines/waiter/runs", json={})).json()
        assert queued_second["status"] == "queued"
    finally:
        hold.release.set()
    for run in (first, queued_first, queued_second):
        assert (await wait_finished(api, run["id"]))["status"] == "succeeded"
    listed = (await api.get("/v1/runs", params={"pipeline": "skipper"})).json()
    assert [item["status"] for item in listed["items"]] == ["cancelled", "succeeded"]
    assert hold.calls == 3
