"""Tests of the quotes connector with Mashpipe's testing harness: respx mocks, no network."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx
from mashpipe_quotes import connector

from app.sdk import InvalidResponse, NotFound
from app.sdk.testing import PollHarness, check_connector, run_action

API = "https://dummyjson.com"


def quote(i: int) -> dict[str, Any]:
    return {"id": i, "quote": f"Quote number {i}.", "author": "Ada" if i % 2 else "Alan"}


def page(ids: range, total: int) -> dict[str, Any]:
    return {"quotes": [quote(i) for i in ids], "total": total, "skip": ids.start - 1, "limit": len(ids)}


def test_standard_checks() -> None:
    assert check_connector(connector) == []


@respx.mock
async def test_random_quote() -> None:
    respx.get(f"{API}/quotes/random").respond(json=quote(7))
    assert await run_action(connector, "random_quote", {}) == {
        "id": 7,
        "quote": "Quote number 7.",
        "author": "Ada",
    }


@respx.mock
async def test_get_quote_and_not_found() -> None:
    respx.get(f"{API}/quotes/3").respond(json=quote(3))
    assert (await run_action(connector, "get_quote", {"id": 3}))["author"] == "Ada"
    respx.get(f"{API}/quotes/9999").respond(404, json={"message": "Quote with id '9999' not found"})
    with pytest.raises(NotFound, match="Quote with id '9999' not found"):
        await run_action(connector, "get_quote", {"id": 9999})


@respx.mock
async def test_list_quotes_follows_pages_and_filters() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        skip, limit = int(request.url.params["skip"]), int(request.url.params["limit"])
        ids = range(skip + 1, min(skip + limit, 150) + 1)
        return httpx.Response(200, json=page(ids, 150))

    route = respx.get(f"{API}/quotes").mock(side_effect=answer)
    quotes = await run_action(connector, "list_quotes", {"limit": 60, "author": "Alan"})
    assert [q["id"] for q in quotes][:3] == [2, 4, 6]
    assert len(quotes) == 60
    assert [c.request.url.params["skip"] for c in route.calls] == ["0", "100"]


@respx.mock
async def test_a_malformed_answer_is_a_clear_error() -> None:
    respx.get(f"{API}/quotes/random").respond(json={"id": "x"})
    with pytest.raises(InvalidResponse, match="unexpected shape"):
        await run_action(connector, "random_quote", {})


@respx.mock
async def test_new_quotes_baseline_then_new_then_nothing_twice() -> None:
    route = respx.get(f"{API}/quotes").respond(json=page(range(1, 2), 150))
    harness = PollHarness(connector, "new_quotes")
    first = await harness.poll()
    assert (first.baseline, first.items, first.cursor) == (True, [], 150)

    route.respond(json=page(range(151, 153), 152))
    second = await harness.poll()
    assert [q["id"] for q in second.items] == [151, 152]
    assert route.calls.last.request.url.params["skip"] == "150"

    route.respond(json=page(range(151, 153), 152))  # the API lists the same quotes again
    third = await harness.poll()
    assert third.items == []
    assert [q["id"] for q in third.duplicates] == [151, 152]
