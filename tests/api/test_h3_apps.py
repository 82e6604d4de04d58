"""Published endpoints: GET /v1/apps/{account}/{name} as JSON, RSS and CSV; inputs; privacy; cache; ETag."""

from __future__ import annotations

import asyncio
import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from app.runtime.bootstrap import create_account

from .helpers import client_for, error_of, save

STORIES = [
    {
        "id": i,
        "title": f"Story {i}",
        "url": f"https://news.example/{i}",
        "score": i * 10,
        "at": 1_700_000_000 + i,
    }
    for i in range(1, 51)
]

TOP = """\
version: 1
name: top
description: The best stories of the upstream
inputs:
  limit: {type: integer, default: 3, minimum: 1, maximum: 20}
  min_score: {type: number, default: 0}
  tags: {type: array, default: []}
triggers:
  - endpoint: {format: FORMAT, CACHE public: PUBLIC}
steps:
  - id: fetch
    uses: http.get_json
    with: {url: "UPSTREAM/stories"}
  - id: good
    uses: core.filter
    with: {items: "${{ steps.fetch.output }}", where: item.score >= inputs.min_score}
  - id: shaped
    uses: core.map
    with:
      items: ${{ steps.good.output }}
      to:
        id: ${{ item.id }}
        title: ${{ item.title }}
        url: ${{ item.url }}
        score: ${{ item.score }}
        published: ${{ item.at }}
  - id: ranked
    uses: core.sort
    with: {items: "${{ steps.shaped.output }}", by: item.score, order: desc, limit: "${{ inputs.limit }}"}
outputs:
  stories: ${{ steps.ranked.output }}
  tags: ${{ inputs.tags }}
"""


def top_source(upstream: str, *, fmt: str = "json", cache: str | None = None, public: bool = True) -> str:
    return (
        TOP.replace("UPSTREAM", upstream)
        .replace("FORMAT", fmt)
        .replace("CACHE ", f"cache: {cache}, " if cache else "")
        .replace("PUBLIC", "true" if public else "false")
    )


class Upstream:
    """A local JSON upstream that counts its calls and can hold them until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.status = 200
        self.release = asyncio.Event()
        self.release.set()

    async def stories(self, request: web.Request) -> web.Response:
        self.calls += 1
        await self.release.wait()
        if self.status != 200:
            return web.json_response({"error": "down"}, status=self.status)
        return web.json_response(STORIES)


@pytest.fixture
async def upstream(local_server: Callable[[Any], Awaitable[str]]) -> tuple[Upstream, str]:
    counting = Upstream()
    base = await local_server({"GET /stories": counting.stories})
    return counting, base


async def publish(api: httpx.AsyncClient, source: str) -> None:
    await save(api, source)


async def run_total(api: httpx.AsyncClient, pipeline: str = "top") -> int:
    response = await api.get("/v1/runs", params={"pipeline": pipeline})
    total: int = response.json()["total"]
    return total


# -- formats ----------------------------------------------------------------------------------------


async def test_json_endpoint_runs_the_pipeline_and_returns_its_outputs(api, anon, upstream):
    counting, base = upstream
    await publish(api, top_source(base))
    response = await anon.get("/v1/apps/default/top", params={"limit": "2"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "stories": [
            {
                "id": 50,
                "title": "Story 50",
                "url": "https://news.example/50",
                "score": 500,
                "published": 1_700_000_050,
            },
            {
                "id": 49,
                "title": "Story 49",
                "url": "https://news.example/49",
                "score": 490,
                "published": 1_700_000_049,
            },
        ],
        "tags": [],
    }
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"].startswith('"')
    assert response.headers["x-cache"] == "miss"
    run_id = response.headers["x-mashpipe-run"]
    run = (await api.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "succeeded"
    assert run["trigger"] == {"kind": "endpoint", "query": {"limit": "2"}}
    assert run["inputs"] == {"limit": 2, "min_score": 0, "tags": []}
    assert counting.calls == 1


async def test_query_values_are_coerced_and_bad_ones_are_422_with_details(api, anon, upstream):
    _, base = upstream
    await publish(api, top_source(base))
    ok = await anon.get("/v1/apps/default/top?limit=1&min_score=495.5&tags=a&tags=b")
    assert ok.status_code == 200, ok.text
    assert ok.json()["tags"] == ["a", "b"]
    assert [story["id"] for story in ok.json()["stories"]] == [50]
    json_list = await anon.get("/v1/apps/default/top", params={"tags": '["x"]'})
    assert json_list.json()["tags"] == ["x"]

    bad = await anon.get("/v1/apps/default/top", params={"limit": "many", "min_score": "x", "color": "red"})
    assert bad.status_code == 422
    error = error_of(bad)
    assert error["code"] == "validation_failed"
    inputs = {detail["input"] for detail in error["details"]}
    assert inputs == {"limit", "min_score", "color"}
    over = await anon.get("/v1/apps/default/top", params={"limit": "99"})
    assert over.status_code == 422
    assert error_of(over)["details"][0]["input"] == "limit"
    twice = await anon.get("/v1/apps/default/top?limit=1&limit=2")
    assert twice.status_code == 422
    assert "2 times" in error_of(twice)["details"][0]["message"]
    assert await run_total(api) == 2  # the refused requests started nothing


async def test_rss_endpoint(api, anon, upstream):
    _, base = upstream
    await publish(api, top_source(base, fmt="rss"))
    response = await anon.get("/v1/apps/default/top", params={"limit": "2"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"
    root = ET.fromstring(response.content)
    assert root.tag == "rss"
    assert root.attrib["version"] == "2.0"
    channel = root.find("channel")
    assert channel is not None
    assert channel.findtext("title") == "top"
    assert channel.findtext("description") == "The best stories of the upstream"
    assert channel.findtext("link") == "http://mashpipe.test/v1/apps/default/top?limit=2"
    items = channel.findall("item")
    assert [item.findtext("title") for item in items] == ["Story 50", "Story 49"]
    assert items[0].findtext("link") == "https://news.example/50"
    assert items[0].findtext("pubDate") == "Tue, 14 Nov 2023 22:14:10 GMT"
    guid = items[0].find("guid")
    assert guid is not None
    assert guid.text == "50"
    assert guid.attrib["isPermaLink"] == "false"


async def test_csv_endpoint(api, anon, upstream):
    _, base = upstream
    await publish(api, top_source(base, fmt="csv"))
    response = await anon.get("/v1/apps/default/top", params={"limit": "2"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows == [
        ["id", "title", "url", "score", "published"],
        ["50", "Story 50", "https://news.example/50", "500", "1700000050"],
        ["49", "Story 49", "https://news.example/49", "490", "1700000049"],
    ]
    assert response.content.count(b"\r\n") == 3


async def test_rss_without_a_list_output_is_502(api, anon):
    source = """\
version: 1
name: scalar
triggers:
  - endpoint: {format: rss}
steps:
  - id: a
    uses: core.set
    with: {value: 1}
outputs:
  one: ${{ steps.a.output }}
"""
    await save(api, source)
    response = await anon.get("/v1/apps/default/scalar")
    assert response.status_code == 502
    assert error_of(response)["code"] == "endpoint_output_invalid"


# -- failures, addresses and privacy ----------------------------------------------------------------


async def test_a_failed_run_is_502_with_the_error_shape(api, anon, upstream):
    counting, base = upstream
    counting.status = 404
    await publish(api, top_source(base))
    response = await anon.get("/v1/apps/default/top")
    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "run_failed"
    assert error["details"]["status"] == "failed"
    assert error["details"]["run_id"]
    assert response.headers.get("etag") is None


async def test_unknown_account_pipeline_or_unpublished_pipeline_is_404(api, anon, upstream):
    _, base = upstream
    await publish(api, top_source(base))
    unpublished = top_source(base).replace("name: top", "name: quiet").split("triggers:")[0] + (
        "steps:" + top_source(base).split("steps:")[1]
    )
    await save(api, unpublished)
    for path in ("/v1/apps/nobody/top", "/v1/apps/default/nothing", "/v1/apps/default/quiet"):
        response = await anon.get(path)
        assert response.status_code == 404, path
        assert error_of(response)["code"] == "not_found"


async def test_a_private_endpoint_needs_a_key_of_its_account(api, anon, app_state, api_key, upstream):
    _, base = upstream
    await publish(api, top_source(base, public=False, cache="1m"))
    missing = await anon.get("/v1/apps/default/top")
    assert missing.status_code == 401
    wrong = await anon.get(
        "/v1/apps/default/top", headers={"Authorization": "Bearer mp_not_a_real_key_000000000"}
    )
    assert wrong.status_code == 401
    app, state = app_state
    _, other_key = await create_account(state.db, state.secret_key, "other")
    async with client_for(app, other_key) as other:
        assert (await other.get("/v1/apps/default/top")).status_code == 404
    response = await api.get("/v1/apps/default/top")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"].startswith("private, max-age=")
    assert response.headers["vary"] == "Authorization"
    assert await run_total(api) == 1


async def test_another_accounts_pipeline_is_published_under_its_own_name(api, app_state, upstream):
    _, base = upstream
    app, state = app_state
    _, other_key = await create_account(state.db, state.secret_key, "other")
    async with client_for(app, other_key) as other, client_for(app) as anon:
        await publish(other, top_source(base))
        assert (await anon.get("/v1/apps/other/top")).status_code == 200
        assert (await anon.get("/v1/apps/default/top")).status_code == 404


# -- cache and ETag ---------------------------------------------------------------------------------


async def test_cache_hit_and_miss_per_inputs_and_revision(api, anon, app_state, upstream):
    counting, base = upstream
    state = app_state[1]
    now = [1000.0]
    state.endpoints.cache.clock = lambda: now[0]
    await publish(api, top_source(base, cache="60s"))

    first = await anon.get("/v1/apps/default/top", params={"limit": "2"})
    assert first.status_code == 200
    assert first.headers["x-cache"] == "miss"
    assert first.headers["cache-control"] == "public, max-age=60"
    now[0] += 15
    second = await anon.get("/v1/apps/default/top", params={"limit": "02"})  # same inputs once coerced
    assert second.headers["x-cache"] == "hit"
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["cache-control"] == "public, max-age=45"
    assert counting.calls == 1
    assert await run_total(api) == 1

    other_inputs = await anon.get("/v1/apps/default/top", params={"limit": "3"})
    assert other_inputs.headers["x-cache"] == "miss"
    assert counting.calls == 2

    now[0] += 46  # the first entry expired
    expired = await anon.get("/v1/apps/default/top", params={"limit": "2"})
    assert expired.headers["x-cache"] == "miss"
    assert counting.calls == 3

    changed = top_source(base, cache="60s").replace("The best stories", "The very best stories")
    saved = await api.put("/v1/pipelines/top", content=changed, headers={"Content-Type": "application/yaml"})
    assert saved.status_code == 200
    new_revision = await anon.get("/v1/apps/default/top", params={"limit": "2"})
    assert new_revision.headers["x-cache"] == "miss"  # a new revision never serves the old answer
    assert counting.calls == 4


async def test_concurrent_misses_wait_for_one_run(api, anon, app_state, upstream):
    counting, base = upstream
    state = app_state[1]
    await publish(api, top_source(base, cache="5m"))
    counting.release.clear()
    requests = [asyncio.ensure_future(anon.get("/v1/apps/default/top")) for _ in range(12)]
    for _ in range(2000):  # every request is waiting for the one run in flight
        if state.endpoints.cache.waiting() == 12:
            break
        await asyncio.sleep(0.005)
    assert state.endpoints.cache.waiting() == 12
    assert state.endpoints.cache.in_flight() == 1
    counting.release.set()
    responses = await asyncio.gather(*requests)
    assert {response.status_code for response in responses} == {200}
    assert len({response.content for response in responses}) == 1
    assert sorted(response.headers["x-cache"] for response in responses) == ["hit"] * 11 + ["miss"]
    assert counting.calls == 1
    assert await run_total(api) == 1


async def test_a_failed_run_is_not_cached(api, anon, upstream):
    counting, base = upstream
    await publish(api, top_source(base, cache="5m"))
    counting.status = 500
    assert (await anon.get("/v1/apps/default/top")).status_code == 502
    counting.status = 200
    ok = await anon.get("/v1/apps/default/top")
    assert ok.status_code == 200
    assert ok.headers["x-cache"] == "miss"


async def test_etag_and_if_none_match(api, anon, upstream):
    counting, base = upstream
    await publish(api, top_source(base, cache="5m"))
    first = await anon.get("/v1/apps/default/top")
    etag = first.headers["etag"]
    not_modified = await anon.get("/v1/apps/default/top", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert not_modified.headers["cache-control"].startswith("public, max-age=")
    listed = await anon.get("/v1/apps/default/top", headers={"If-None-Match": f'"other", W/{etag}'})
    assert listed.status_code == 304
    changed = await anon.get("/v1/apps/default/top", headers={"If-None-Match": '"stale"'})
    assert changed.status_code == 200
    assert changed.content == first.content
    assert counting.calls == 1


async def test_without_cache_every_request_runs_and_revalidates_by_etag(api, anon, upstream):
    counting, base = upstream
    await publish(api, top_source(base))
    first = await anon.get("/v1/apps/default/top")
    again = await anon.get("/v1/apps/default/top", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["cache-control"] == "no-cache"
    assert counting.calls == 2
    assert await run_total(api) == 2


# -- the fast path of cache hits ----------------------------------------------------------------------


async def test_a_cache_hit_is_the_same_answer_as_the_miss(api, anon, upstream, app_state, monkeypatch):
    _, base = upstream
    endpoints = app_state[1].endpoints
    routed: list[Any] = []
    serve = endpoints.serve

    async def counting_serve(*args: Any, **kwargs: Any) -> Any:
        routed.append(args)
        return await serve(*args, **kwargs)

    monkeypatch.setattr(endpoints, "serve", counting_serve)
    await publish(api, top_source(base, fmt="csv", cache="5m"))
    miss = await anon.get("/v1/apps/default/top", params={"limit": "2"})
    hit = await anon.get("/v1/apps/default/top", params={"limit": "2"})
    assert len(routed) == 1  # the hit was answered before routing (app.api.apps_fast)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    assert hit.content == miss.content
    for name in ("content-type", "content-length", "etag", "x-mashpipe-run"):
        assert hit.headers[name] == miss.headers[name], name
    assert hit.headers["cache-control"].startswith("public, max-age=")
    bad = await anon.get("/v1/apps/default/top", params={"limit": "nope"})  # not served from the cache
    assert bad.status_code == 422
    assert error_of(bad)["details"][0]["input"] == "limit"


async def test_a_cached_private_answer_is_never_served_without_a_key(api, anon, upstream, app_state):
    counting, base = upstream
    await publish(api, top_source(base, cache="5m", public=False))
    assert (await api.get("/v1/apps/default/top")).status_code == 200
    assert (await api.get("/v1/apps/default/top")).headers["x-cache"] == "hit"
    assert (await anon.get("/v1/apps/default/top")).status_code == 401
    app, state = app_state
    _, other_key = await create_account(state.db, state.secret_key, "another")
    async with client_for(app, other_key) as other:
        assert (await other.get("/v1/apps/default/top")).status_code == 404
    assert counting.calls == 1


async def test_rss_hits_are_served_by_the_route_with_their_own_link(api, anon, upstream):
    counting, base = upstream
    await publish(api, top_source(base, fmt="rss", cache="5m"))
    first = await anon.get("/v1/apps/default/top", params={"limit": "2"})
    again = await anon.get("/v1/apps/default/top", params={"limit": "2"})
    assert again.headers["x-cache"] == "hit"
    assert again.content == first.content
    assert counting.calls == 1
