"""The ``hackernews`` connector against respx mocks of the Firebase API."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import respx

from app.sdk import InvalidResponse, NotFound, UpstreamError
from app.sdk.testing import check_connector, run_action, run_poll
from connectors.hackernews import connector as hn
from tests.connectors.error_cases import ERROR_CASES, check_error_case

API = "https://hacker-news.firebaseio.com/v0"


def story(item_id: int, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "by": f"user{item_id}",
        "descendants": item_id % 7,
        "id": item_id,
        "kids": [item_id * 10 + 1, item_id * 10 + 2],
        "score": item_id % 300,
        "time": 1_700_000_000 + item_id,
        "title": f"Story {item_id}",
        "type": "story",
        "url": f"https://example.org/{item_id}",
    }
    data.update(extra)
    return data


def mock_items(mock: respx.MockRouter, items: dict[int, Any]) -> dict[int, respx.Route]:
    return {i: mock.get(f"{API}/item/{i}.json").respond(json=body) for i, body in items.items()}


def test_standard_checks() -> None:
    assert check_connector(hn) == []
    assert hn.base_url == API
    assert hn.auth_kinds() == ["none"]
    assert [op.name for op in hn.actions()] == [
        "top_stories",
        "newest_stories",
        "best_stories",
        "item",
        "user",
        "request",
    ]
    assert [op.name for op in hn.polls()] == ["new_stories"]


@pytest.mark.parametrize(
    ("operation", "listing"),
    [("top_stories", "topstories"), ("newest_stories", "newstories"), ("best_stories", "beststories")],
)
async def test_listing_fetches_ids_then_items_in_order(operation: str, listing: str) -> None:
    with respx.mock(assert_all_called=False) as mock:
        ids_route = mock.get(f"{API}/{listing}.json").respond(json=[301, 302, 303, 304, 305])
        routes = mock_items(
            mock,
            {
                301: story(301),
                302: story(302, url=None, text="Ask HN: how?", title="Ask HN: how?"),
                303: {"id": 303, "deleted": True, "type": "story", "time": 1_700_000_303},
                304: story(304, dead=True),
                305: story(305),
            },
        )
        out = await run_action(hn, operation, {"limit": 5})
    sent = ids_route.calls.last.request
    assert sent.method == "GET"
    assert str(sent.url) == f"{API}/{listing}.json"
    assert "authorization" not in sent.headers
    assert sent.headers["user-agent"].startswith("mashpipe/")
    assert all(route.call_count == 1 for route in routes.values())
    assert [s["id"] for s in out] == [301, 302, 305]
    first = out[0]
    assert first == {
        "id": 301,
        "type": "story",
        "title": "Story 301",
        "url": "https://example.org/301",
        "hn_url": "https://news.ycombinator.com/item?id=301",
        "by": "user301",
        "time": "2023-11-14T22:18:21Z",
        "score": 1,
        "descendants": 0,
        "text": None,
    }
    ask = out[1]
    assert ask["url"] == ask["hn_url"] == "https://news.ycombinator.com/item?id=302"
    assert ask["text"] == "Ask HN: how?"


async def test_listing_limit_only_fetches_the_first_items() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{API}/topstories.json").respond(json=list(range(1, 501)))
        items = mock.get(url__regex=rf"^{API}/item/\d+\.json$").mock(
            side_effect=lambda request: httpx.Response(200, json=story(int(request.url.path[9:-5])))
        )
        out = await run_action(hn, "top_stories", {"limit": 3})
    assert [s["id"] for s in out] == [1, 2, 3]
    assert sorted(str(call.request.url) for call in items.calls) == [
        f"{API}/item/{i}.json" for i in (1, 2, 3)
    ]


async def test_items_are_fetched_concurrently_within_the_bound() -> None:
    in_flight = 0
    peak = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(5):  # let the other tasks start while this request is "in flight"
            await asyncio.sleep(0)
        in_flight -= 1
        item_id = int(request.url.path.rsplit("/", 1)[1].removesuffix(".json"))
        return httpx.Response(200, json=story(item_id))

    with respx.mock() as mock:
        mock.get(f"{API}/beststories.json").respond(json=list(range(1, 21)))
        mock.get(url__regex=rf"^{API}/item/\d+\.json$").mock(side_effect=answer)
        out = await run_action(hn, "best_stories", {"limit": 20, "concurrency": 3})
    assert [s["id"] for s in out] == list(range(1, 21))
    assert peak == 3


async def test_one_failing_item_fails_the_step() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{API}/topstories.json").respond(json=[1, 2, 3])
        mock_items(mock, {1: story(1), 3: story(3)})
        mock.get(f"{API}/item/2.json").respond(503, text="overloaded")
        with pytest.raises(UpstreamError) as raised:
            await run_action(hn, "top_stories", {"limit": 3, "concurrency": 1})
    assert raised.value.retry_kind == "http_5xx"
    assert "/item/2.json" in raised.value.message


async def test_listing_that_is_not_a_list_of_ids() -> None:
    with respx.mock() as mock:
        mock.get(f"{API}/topstories.json").respond(json={"oops": True})
        with pytest.raises(InvalidResponse):
            await run_action(hn, "top_stories", {})


async def test_item_and_missing_item() -> None:
    comment = {
        "by": "someone",
        "id": 2921983,
        "kids": [2922097],
        "parent": 2921506,
        "text": "A <i>comment</i>.",
        "time": 1314211127,
        "type": "comment",
    }
    with respx.mock() as mock:
        route = mock.get(f"{API}/item/2921983.json").respond(json=comment)
        out = await run_action(hn, "item", {"id": 2921983})
        mock.get(f"{API}/item/99.json").respond(json=None)
        with pytest.raises(NotFound, match="no item 99"):
            await run_action(hn, "item", {"id": 99})
    assert str(route.calls.last.request.url) == f"{API}/item/2921983.json"
    assert out["type"] == "comment"
    assert out["parent"] == 2921506
    assert out["kids"] == [2922097]
    assert out["url"] == "https://news.ycombinator.com/item?id=2921983"
    assert out["time"] == "2011-08-24T18:38:47Z"
    assert out["deleted"] is False


async def test_user_keeps_the_latest_submissions() -> None:
    profile = {
        "about": 'Founder of <a href="x">things</a>',
        "created": 1173923446,
        "id": "jl",
        "karma": 2937,
        "submitted": list(range(1000, 1250)),
    }
    with respx.mock() as mock:
        route = mock.get(f"{API}/user/jl.json").respond(json=profile)
        out = await run_action(hn, "user", {"id": "jl"})
        mock.get(f"{API}/user/nobody.json").respond(json=None)
        with pytest.raises(NotFound):
            await run_action(hn, "user", {"id": "nobody"})
    assert str(route.calls.last.request.url) == f"{API}/user/jl.json"
    assert out["karma"] == 2937
    assert out["created"] == "2007-03-15T01:50:46Z"
    assert out["url"] == "https://news.ycombinator.com/user?id=jl"
    assert out["submitted_count"] == 250
    assert out["submitted"] == list(range(1000, 1100))


async def test_invalid_params_are_refused_before_any_request() -> None:
    from app.errors import StepError

    with respx.mock() as mock:
        with pytest.raises(StepError) as raised:
            await run_action(hn, "user", {"id": "../admin"})
        assert raised.value.code == "invalid_params"
        with pytest.raises(StepError):
            await run_action(hn, "top_stories", {"limit": 501})
        assert not mock.calls


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_listing_errors(case: Any) -> None:
    await check_error_case(case, hn, "top_stories", {}, "GET", f"{API}/topstories.json")


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_item_errors(case: Any) -> None:
    await check_error_case(case, hn, "item", {"id": 8863}, "GET", f"{API}/item/8863.json")


async def test_new_stories_poll_baseline_then_new_ones_oldest_first() -> None:
    with respx.mock(assert_all_called=False) as mock:
        ids = mock.get(f"{API}/newstories.json")
        mock_items(mock, {i: story(i) for i in range(90, 111)})

        ids.respond(json=[100, 99, 98, 97, 96, 95])
        first = await run_poll(hn, "new_stories", {"limit": 3}, None)
        assert [s["id"] for s in first.items] == [100, 99, 98]
        assert first.keys == ["100", "99", "98"]
        assert first.cursor == 100

        ids.respond(json=[103, 102, 101, 100, 99])
        second = await run_poll(hn, "new_stories", {"limit": 2}, first.cursor)
        assert [s["id"] for s in second.items] == [101, 102]
        assert second.cursor == 102

        third = await run_poll(hn, "new_stories", {"limit": 2}, second.cursor)
        assert [s["id"] for s in third.items] == [103]
        assert third.cursor == 103

        quiet = await run_poll(hn, "new_stories", {"limit": 2}, third.cursor)
        assert quiet.items == []
        assert quiet.keys == []
        assert quiet.cursor == 103


async def test_new_stories_poll_skips_deleted_but_moves_the_cursor() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{API}/newstories.json").respond(json=[12, 11, 10])
        mock_items(mock, {11: story(11), 12: {"id": 12, "deleted": True, "type": "story"}})
        result = await run_poll(hn, "new_stories", {}, 10)
    assert [s["id"] for s in result.items] == [11]
    assert result.cursor == 12


async def test_new_stories_poll_on_an_empty_listing() -> None:
    with respx.mock() as mock:
        mock.get(f"{API}/newstories.json").respond(json=[])
        result = await run_poll(hn, "new_stories", {}, None)
    assert result.items == []
    assert result.cursor is None
