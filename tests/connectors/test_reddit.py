"""The ``reddit`` connector against respx mocks of Reddit's listing JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from app.errors import StepError
from app.sdk import AuthFailed, NotFound
from app.sdk.testing import check_connector, run_action, run_poll
from connectors.reddit import USER_AGENT
from connectors.reddit import connector as reddit
from tests.connectors.error_cases import ERROR_CASES, check_error_case

WWW = "https://www.reddit.com"
HOT = json.loads((Path(__file__).parent / "fixtures" / "reddit" / "python_hot.json").read_text())


def post(post_id: str, created: float = 1_741_000_000.0, **extra: Any) -> dict[str, Any]:
    data = {
        "id": post_id,
        "name": f"t3_{post_id}",
        "title": f"Post {post_id}",
        "author": "someone",
        "subreddit": "rust",
        "url": f"https://example.org/{post_id}",
        "permalink": f"/r/rust/comments/{post_id}/post/",
        "score": 10,
        "num_comments": 2,
        "created_utc": created,
        "is_self": False,
        "domain": "example.org",
    }
    data.update(extra)
    return {"kind": "t3", "data": data}


def listing(children: list[dict[str, Any]], after: str | None = None) -> dict[str, Any]:
    return {"kind": "Listing", "data": {"after": after, "before": None, "children": children}}


def test_standard_checks() -> None:
    assert check_connector(reddit) == []
    assert reddit.auth_kinds() == ["none"]
    assert reddit.base_url == WWW
    assert reddit.rate_limit is not None
    assert reddit.rate_limit.describe() == {"requests": 10, "per": "minute"}
    assert [op.name for op in reddit.polls()] == ["new_posts"]
    assert USER_AGENT.startswith("server:io.mashpipe.connector.reddit:v1.0.0")


@respx.mock
async def test_posts_hot_request_and_parsing() -> None:
    route = respx.get(f"{WWW}/r/Python/hot.json").respond(json=HOT)
    out = await run_action(reddit, "posts", {"subreddit": "r/Python", "limit": 2})
    sent = route.calls[0].request
    assert sent.url.path == "/r/Python/hot.json"
    assert dict(sent.url.params) == {"limit": "2", "raw_json": "1"}
    assert sent.headers["user-agent"] == USER_AGENT
    assert "authorization" not in sent.headers
    assert route.call_count == 1  # limit reached on the first page
    assert out == [
        {
            "id": "1j0aaaa",
            "name": "t3_1j0aaaa",
            "title": "Sunday Daily Thread: What's everyone working on this week?",
            "author": "AutoModerator",
            "subreddit": "Python",
            "url": "https://www.reddit.com/r/Python/comments/1j0aaaa/sunday_daily_thread_whats_everyone_working_on/",
            "permalink": "https://www.reddit.com/r/Python/comments/1j0aaaa/sunday_daily_thread_whats_everyone_working_on/",
            "selftext": "Post your questions & answers here <3",
            "score": 12,
            "num_comments": 31,
            "created": "2025-03-09T06:00:00Z",
            "over_18": False,
            "is_self": True,
            "stickied": True,
            "flair": "Daily Thread",
            "domain": "self.Python",
        },
        {
            "id": "1j2k3l4",
            "name": "t3_1j2k3l4",
            "title": "Python 3.14 is out: free-threading & template strings",
            "author": "release_bot",
            "subreddit": "Python",
            "url": "https://www.python.org/downloads/release/python-3140/",
            "permalink": "https://www.reddit.com/r/Python/comments/1j2k3l4/python_314_is_out/",
            "selftext": "",
            "score": 1523,
            "num_comments": 287,
            "created": "2025-03-09T08:46:40.500000Z",
            "over_18": False,
            "is_self": False,
            "stickied": False,
            "flair": "News",
            "domain": "python.org",
        },
    ]


async def test_posts_follow_the_after_cursor_across_pages() -> None:
    first_page = [post(f"a{i}") for i in range(100)]
    second_page = [post(f"b{i}") for i in range(100)]
    third_page = [post(f"c{i}") for i in range(30)]
    with respx.mock() as mock:
        route = mock.get(f"{WWW}/r/rust+golang/top.json").mock(
            side_effect=[
                httpx.Response(200, json=listing(first_page, after="t3_a99")),
                httpx.Response(200, json=listing(second_page, after="t3_b99")),
                httpx.Response(200, json=listing(third_page, after=None)),
            ]
        )
        out = await run_action(
            reddit, "posts", {"subreddit": "rust+golang", "sort": "top", "time": "week", "limit": 1000}
        )
    assert len(out) == 230
    assert [p["id"] for p in out[98:102]] == ["a98", "a99", "b0", "b1"]
    queries = [dict(call.request.url.params) for call in route.calls]
    assert queries == [
        {"limit": "100", "raw_json": "1", "t": "week"},
        {"limit": "100", "raw_json": "1", "t": "week", "after": "t3_a99"},
        {"limit": "100", "raw_json": "1", "t": "week", "after": "t3_b99"},
    ]


async def test_posts_stop_at_limit_in_the_middle_of_a_page() -> None:
    with respx.mock() as mock:
        route = mock.get(f"{WWW}/r/rust/new.json").mock(
            side_effect=[
                httpx.Response(200, json=listing([post(f"a{i}") for i in range(100)], after="t3_a99")),
                httpx.Response(200, json=listing([post(f"b{i}") for i in range(100)], after="t3_b99")),
            ]
        )
        out = await run_action(reddit, "posts", {"subreddit": "rust", "sort": "new", "limit": 150})
    assert len(out) == 150
    assert route.call_count == 2


async def test_missing_subreddit_redirected_to_search_is_not_found() -> None:
    search = listing([{"kind": "t5", "data": {"display_name": "rustlang", "name": "t5_xyz"}}])
    with respx.mock() as mock:
        mock.get(f"{WWW}/r/nosuchsubxyz/hot.json").respond(
            302, headers={"Location": f"{WWW}/subreddits/search.json?q=nosuchsubxyz"}
        )
        mock.get(f"{WWW}/subreddits/search.json").respond(json=search)
        with pytest.raises(NotFound, match="no such subreddit"):
            await run_action(reddit, "posts", {"subreddit": "nosuchsubxyz"})


async def test_private_subreddit_message() -> None:
    with respx.mock() as mock:
        mock.get(f"{WWW}/r/secretclub/hot.json").respond(
            403, json={"reason": "private", "message": "Forbidden", "error": 403}
        )
        with pytest.raises(AuthFailed, match="r/secretclub is private"):
            await run_action(reddit, "posts", {"subreddit": "secretclub"})
        mock.get(f"{WWW}/r/secretclub/new.json").respond(403, json={"message": "Forbidden", "error": 403})
        with pytest.raises(AuthFailed, match="r/secretclub is private"):
            await run_poll(reddit, "new_posts", {"subreddit": "secretclub"}, None)


@pytest.mark.parametrize(
    "params",
    [
        {"subreddit": "a"},
        {"subreddit": "../../api/v1/me"},
        {"subreddit": "python?x=1"},
        {"subreddit": "python", "sort": "best"},
        {"subreddit": "python", "sort": "hot", "time": "week"},
        {"subreddit": "python", "limit": 0},
    ],
)
async def test_invalid_params(params: dict[str, Any]) -> None:
    with respx.mock() as mock:
        with pytest.raises(StepError) as raised:
            await run_action(reddit, "posts", params)
        assert not mock.calls
    assert raised.value.code == "invalid_params"


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_posts_errors(case: Any) -> None:
    await check_error_case(case, reddit, "posts", {"subreddit": "python"}, "GET", f"{WWW}/r/python/hot.json")


async def test_new_posts_poll_baseline_new_items_and_cursor() -> None:
    with respx.mock() as mock:
        route = mock.get(f"{WWW}/r/rust/new.json")

        route.respond(json=listing([post("c"), post("b"), post("a")], after="t3_a"))
        first = await run_poll(reddit, "new_posts", {"subreddit": "rust", "limit": 3}, None)
        sent = route.calls.last.request
        assert dict(sent.url.params) == {"limit": "3", "raw_json": "1"}
        assert sent.headers["user-agent"] == USER_AGENT
        assert [p["id"] for p in first.items] == ["c", "b", "a"]
        assert first.keys == ["t3_c", "t3_b", "t3_a"]
        assert first.cursor == ["t3_c", "t3_b", "t3_a"]

        # two new posts, and one approved late that shows up below already seen ones
        route.respond(json=listing([post("e"), post("d"), post("c"), post("late"), post("b")]))
        second = await run_poll(reddit, "new_posts", {"subreddit": "rust", "limit": 5}, first.cursor)
        assert [p["id"] for p in second.items] == ["e", "d", "late"]
        assert second.keys == ["t3_e", "t3_d", "t3_late"]
        assert second.cursor == ["t3_e", "t3_d", "t3_c", "t3_late", "t3_b", "t3_a"]

        third = await run_poll(reddit, "new_posts", {"subreddit": "rust", "limit": 5}, second.cursor)
        assert third.items == []
        assert third.cursor == second.cursor


async def test_new_posts_cursor_is_bounded() -> None:
    old = [f"t3_old{i}" for i in range(600)]
    with respx.mock() as mock:
        mock.get(f"{WWW}/r/rust/new.json").respond(json=listing([post("new")]))
        result = await run_poll(reddit, "new_posts", {"subreddit": "rust"}, old)
    assert [p["id"] for p in result.items] == ["new"]
    assert len(result.cursor) == 500
    assert result.cursor[:2] == ["t3_new", "t3_old0"]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_new_posts_errors(case: Any) -> None:
    headers = {"Content-Type": "application/json", **case.headers}
    with respx.mock() as mock:
        mock.get(f"{WWW}/r/rust/new.json").respond(case.status, headers=headers, content=case.content)
        with pytest.raises(case.error) as raised:
            await run_poll(reddit, "new_posts", {"subreddit": "rust"}, None)
    assert raised.value.retry_kind == case.retry_kind
    assert raised.value.retry_after == case.retry_after
