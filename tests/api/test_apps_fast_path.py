"""The fast path of published endpoints (app.api.apps_fast): which requests skip routing, and that they
are answered exactly as the route answers them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import app.api.apps as apps_route
from app.api.apps_fast import PublishedAppsMiddleware

from .helpers import error_of
from .test_h3_apps import Upstream, publish, run_total, top_source


async def replace(api: httpx.AsyncClient, source: str) -> None:
    """Save a new revision of the pipeline `top`."""
    headers = {"Content-Type": "application/yaml"}
    response = await api.put("/v1/pipelines/top", content=source, headers=headers)
    assert response.status_code == 200, response.text


@pytest.fixture
async def upstream(local_server: Any) -> tuple[Upstream, str]:
    """The stories upstream of the published pipeline (counting its calls)."""
    counting = Upstream()
    base = await local_server({"GET /stories": counting.stories})
    return counting, base


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests that reached the `GET /v1/apps/...` route (not the fast path)."""
    seen: list[str] = []
    get_state = apps_route.get_state

    async def counting(request: Any) -> Any:
        seen.append(request.url.path)
        return await get_state(request)

    monkeypatch.setattr(apps_route, "get_state", counting)
    return seen


async def test_a_public_json_miss_runs_without_routing(api, anon, upstream, routed):
    counting, base = upstream
    await publish(api, top_source(base))
    first = await anon.get("/v1/apps/default/top", params={"limit": "2"})
    second = await anon.get("/v1/apps/default/top", params={"limit": "2"})
    assert routed == []
    assert first.status_code == second.status_code == 200
    assert [story["id"] for story in first.json()["stories"]] == [50, 49]
    assert first.headers["x-cache"] == "miss"
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["content-type"] == "application/json"
    assert first.headers["content-length"] == str(len(first.content))
    assert first.headers["x-mashpipe-run"] != second.headers["x-mashpipe-run"]
    assert first.headers["etag"] == second.headers["etag"]
    assert counting.calls == 2
    revalidated = await anon.get(
        "/v1/apps/default/top", params={"limit": "2"}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert revalidated.status_code == 304
    assert revalidated.content == b""
    assert routed == []
    assert await run_total(api) == 3


async def test_the_fast_path_answers_what_the_route_answers(api, anon, upstream, routed, monkeypatch):
    _, base = upstream
    await publish(api, top_source(base, fmt="csv"))
    fast = await anon.get("/v1/apps/default/top", params={"limit": "4"})
    assert routed == []

    async def decline(self: Any, scope: Any, send: Any) -> bool:
        return False  # the fast path declines: the route answers

    monkeypatch.setattr(PublishedAppsMiddleware, "_answer", decline)
    via_route = await anon.get("/v1/apps/default/top", params={"limit": "4"})
    assert routed == ["/v1/apps/default/top"]
    assert via_route.status_code == fast.status_code == 200
    assert via_route.content == fast.content
    for name in ("content-type", "content-length", "etag", "cache-control", "x-cache"):
        assert via_route.headers[name] == fast.headers[name], name


async def test_a_failed_run_is_the_api_error_shape_without_routing(api, anon, upstream, routed):
    counting, base = upstream
    counting.status = 503
    await publish(api, top_source(base))
    response = await anon.get("/v1/apps/default/top")
    assert routed == []
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    error = error_of(response)
    assert error["code"] == "run_failed"
    assert "503" in error["message"]
    assert error["details"]["run_id"]
    assert error["details"]["status"] == "failed"


async def test_bad_inputs_private_rss_and_unknown_pipelines_take_the_route(api, anon, upstream, routed):
    counting, base = upstream
    await publish(api, top_source(base))
    bad = await anon.get("/v1/apps/default/top", params={"limit": "many"})
    assert bad.status_code == 422
    assert error_of(bad)["details"][0]["input"] == "limit"
    assert counting.calls == 0  # nothing ran for the refused request
    unknown = await anon.get("/v1/apps/default/nothing-here")
    assert unknown.status_code == 404
    assert routed == ["/v1/apps/default/top", "/v1/apps/default/nothing-here"]
    routed.clear()
    await replace(api, top_source(base, public=False))
    assert (await anon.get("/v1/apps/default/top")).status_code == 401
    assert (await api.get("/v1/apps/default/top")).status_code == 200
    assert routed == ["/v1/apps/default/top", "/v1/apps/default/top"]
    routed.clear()
    await replace(api, top_source(base, fmt="rss"))
    assert (await anon.get("/v1/apps/default/top")).status_code in (200, 502)
    assert routed == ["/v1/apps/default/top"]
