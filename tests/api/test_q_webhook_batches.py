"""Webhook deliveries recorded in group-committed batches: each recorded exactly once, then run."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from .helpers import save, wait_finished

KEYED = """\
version: 1
name: keyed
triggers:
  - webhook: {dedupe_header: X-Id}
steps:
  - id: a
    uses: core.set
    with: {value: "${{ trigger.body.n }}"}
outputs:
  n: ${{ steps.a.output }}
"""


@pytest.fixture
def settings(make_settings):
    return make_settings(public_rate_limit="")  # 500 calls from one client


async def test_500_deliveries_at_concurrency_50_are_recorded_exactly_once(api, anon):
    await save(api, KEYED)
    pipeline = (await api.get("/v1/pipelines/keyed")).json()
    path = "/v1/hooks/" + pipeline["hooks"][0]["id"]
    gate = asyncio.Semaphore(50)

    async def send(index: int) -> httpx.Response:
        key = index % 100  # 100 distinct deliveries, each sent 5 times
        async with gate:
            return await anon.post(path, json={"n": key}, headers={"X-Id": f"delivery-{key}"})

    responses = await asyncio.gather(*(send(index) for index in range(500)))
    statuses = [response.status_code for response in responses]
    assert sorted(statuses) == [200] * 400 + [202] * 100, {
        code: statuses.count(code) for code in set(statuses)
    }
    by_key: dict[int, set[str]] = {}
    for index, response in enumerate(responses):
        by_key.setdefault(index % 100, set()).add(response.json()["run_id"])
    assert all(len(run_ids) == 1 for run_ids in by_key.values())
    listed = (await api.get("/v1/runs", params={"pipeline": "keyed"})).json()
    assert listed["total"] == 100
    for key in (0, 57, 99):
        run = await wait_finished(api, next(iter(by_key[key])))
        assert run["status"] == "succeeded"
        assert run["outputs"] == {"n": key}
