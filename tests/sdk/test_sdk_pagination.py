"""Pagination strategies through ``ctx.paginate``, and ``ctx.request_json``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from app.sdk import (
    ConnectorDefinitionError,
    Context,
    CursorInBody,
    InvalidResponse,
    LinkHeader,
    NotFound,
    Offset,
    PageNumber,
    get_path,
)
from app.sdk.context import StepLog
from app.sdk.http import ConnectorHTTP, build_http_client
from app.sdk.testing import settings_for_tests

BASE = "https://api.pages.test"


@pytest.fixture
async def ctx() -> AsyncIterator[Context]:
    async with build_http_client(settings_for_tests()) as client:
        http = ConnectorHTTP(client, base_url=BASE)
        yield Context(connector="pages", operation="list", http=http, log=StepLog([]))


async def collect(iterator: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in iterator]


@respx.mock
async def test_link_header(ctx: Context) -> None:
    respx.get(f"{BASE}/items", params={"page": "2"}).respond(
        json=[3, 4], headers={"Link": f'<{BASE}/items?page=3>; rel="next"'}
    )
    respx.get(f"{BASE}/items", params={"page": "3"}).respond(json=[5])
    first = respx.get(f"{BASE}/items").respond(
        json=[1, 2], headers={"Link": '</items?page=2>; rel="next", </items?page=3>; rel="last"'}
    )
    assert await collect(ctx.paginate("/items", strategy=LinkHeader())) == [1, 2, 3, 4, 5]
    assert first.call_count == 1


@respx.mock
async def test_cursor_in_body(ctx: Context) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("after")
        pages = {
            None: {"data": {"items": [{"id": 1}, {"id": 2}]}, "meta": {"next": "c2"}},
            "c2": {"data": {"items": [{"id": 3}]}, "meta": {"next": "c3"}},
            "c3": {"data": {"items": []}, "meta": {"next": None}},
        }
        assert request.url.params["q"] == "x"
        return httpx.Response(200, json=pages[cursor])

    respx.get(f"{BASE}/search").mock(side_effect=handler)
    strategy = CursorInBody("meta.next", param="after", items_path="data.items")
    items = await collect(ctx.paginate("/search", strategy=strategy, params={"q": "x"}))
    assert [i["id"] for i in items] == [1, 2, 3]


@respx.mock
async def test_cursor_that_repeats_stops(ctx: Context) -> None:
    route = respx.get(f"{BASE}/loop").respond(json={"items": [1], "next": "same"})
    items = await collect(ctx.paginate("/loop", strategy=CursorInBody("next", items_path="items")))
    assert items == [1, 1]
    assert route.call_count == 2


@respx.mock
async def test_page_number(ctx: Context) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        assert request.url.params["per_page"] == "2"
        data = {1: ["a", "b"], 2: ["c", "d"], 3: ["e"]}[page]
        return httpx.Response(200, json={"results": data})

    respx.get(f"{BASE}/p").mock(side_effect=handler)
    strategy = PageNumber("page", size_param="per_page", size=2, items_path="results")
    assert await collect(ctx.paginate("/p", strategy=strategy)) == ["a", "b", "c", "d", "e"]


@respx.mock
async def test_page_number_without_size_stops_on_empty_page(ctx: Context) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["p"])
        return httpx.Response(200, json=[page] if page < 2 else [])

    respx.get(f"{BASE}/p0").mock(side_effect=handler)
    assert await collect(ctx.paginate("/p0", strategy=PageNumber("p", start=0))) == [0, 1]


@respx.mock
async def test_offset(ctx: Context) -> None:
    data = list(range(7))

    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        limit = int(request.url.params["limit"])
        return httpx.Response(200, json={"rows": data[offset : offset + limit]})

    route = respx.get(f"{BASE}/o").mock(side_effect=handler)
    strategy = Offset("offset", "limit", limit=3, items_path="rows")
    assert await collect(ctx.paginate("/o", strategy=strategy)) == data
    assert route.call_count == 3


@respx.mock
async def test_max_pages_guard_stops_and_logs(ctx: Context) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        return httpx.Response(200, json=[page])

    route = respx.get(f"{BASE}/endless").mock(side_effect=handler)
    items = await collect(ctx.paginate("/endless", strategy=PageNumber(max_pages=5)))
    assert items == [1, 2, 3, 4, 5]
    assert route.call_count == 5
    assert ctx.log.lines == [
        f"WARNING stopped after 5 pages of {'/endless'} (max_pages); later pages were not read"
    ]


@respx.mock
async def test_limit_stops_early(ctx: Context) -> None:
    route = respx.get(f"{BASE}/many").mock(side_effect=lambda r: httpx.Response(200, json=list(range(10))))
    items = await collect(ctx.paginate("/many", strategy=PageNumber(), limit=15))
    assert items == list(range(10)) + list(range(5))
    assert route.call_count == 2


@respx.mock
async def test_pages_are_checked(ctx: Context) -> None:
    respx.get(f"{BASE}/missing").respond(404, json={"message": "gone"})
    respx.get(f"{BASE}/notalist").respond(json={"items": {"a": 1}})
    respx.get(f"{BASE}/broken").respond(text="<html>", headers={"Content-Type": "application/json"})
    with pytest.raises(NotFound, match="gone"):
        await collect(ctx.paginate("/missing", strategy=LinkHeader()))
    with pytest.raises(InvalidResponse, match="expected a list of items at `items`, got dict"):
        await collect(ctx.paginate("/notalist", strategy=LinkHeader(items_path="items")))
    with pytest.raises(InvalidResponse, match="the response is not valid JSON"):
        await collect(ctx.paginate("/broken", strategy=LinkHeader()))


@respx.mock
async def test_request_json(ctx: Context) -> None:
    respx.post(f"{BASE}/echo").mock(
        side_effect=lambda r: httpx.Response(
            201, content=r.content, headers={"Content-Type": "application/json"}
        )
    )
    respx.get(f"{BASE}/empty").respond(204)
    respx.get(f"{BASE}/big").respond(content=b'{"n": 123456789012345678901234567890}')
    assert await ctx.request_json("POST", "/echo", json={"a": [1, 2]}) == {"a": [1, 2]}
    assert await ctx.request_json("GET", "/empty") is None
    assert (await ctx.request_json("GET", "/big"))["n"] == 123456789012345678901234567890


def test_get_path() -> None:
    data = {"a": {"b": [{"c": 1}, {"c": 2}]}}
    assert get_path(data, "a.b.1.c") == 2
    assert get_path(data, "a.b.-1.c") == 2
    assert get_path(data, None) is data
    assert get_path(data, "a.x", None) is None
    with pytest.raises(InvalidResponse, match=r"the response has no `a\.x`"):
        get_path(data, "a.x")


@pytest.mark.parametrize(
    "factory",
    [
        lambda: PageNumber(max_pages=0),
        lambda: PageNumber(size=0, size_param="n"),
        lambda: PageNumber(size=10),
        lambda: PageNumber(start=-1),
        lambda: Offset(limit=0),
        lambda: CursorInBody(""),
        lambda: LinkHeader(max_pages=True),
    ],
)
def test_strategy_arguments_are_checked(factory: Any) -> None:
    with pytest.raises(ConnectorDefinitionError):
        factory()
