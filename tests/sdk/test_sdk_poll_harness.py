"""``PollHarness``: a trigger followed across polls with the platform's poll state (cursor, dedupe)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx
from pydantic import BaseModel, Field

from app.sdk import Connector, Context, Poll, UpstreamError
from app.sdk.testing import PollHarness, settings_for_tests

API = "https://feed.test"

feed = Connector(key="feed", version="1.0.0", title="Feed", description="Numbered posts.", base_url=API)


class Post(BaseModel):
    id: int
    title: str


class Params(BaseModel):
    tag: str = Field(default="all", description="Tag to follow")


class Cursor(BaseModel):
    since: int = Field(default=0, description="Highest id seen")


@feed.poll(title="New posts", dedupe=lambda post: post.id)
async def new_posts(ctx: Context, p: Params, cursor: Cursor | None) -> Poll[Post]:
    """Every post the API lists after the cursor (it may list old ones again)."""
    since = cursor.since if cursor is not None else 0
    raw = await ctx.request_json("GET", "/posts", params={"tag": p.tag, "since": since})
    posts = [Post.model_validate(item) for item in raw]
    ctx.log.info("%s posts", len(posts))
    return Poll(items=posts, cursor=Cursor(since=max([since, *(post.id for post in posts)])))


@feed.action(title="Ping")
async def ping(ctx: Context, p: Params) -> bool:
    """Not a trigger."""
    return True


def posts(*ids: int) -> list[dict[str, Any]]:
    return [{"id": i, "title": f"post {i}"} for i in ids]


@respx.mock
async def test_baseline_then_new_items_then_no_duplicates() -> None:
    route = respx.get(f"{API}/posts").respond(json=posts(2, 1))
    harness = PollHarness(feed, "new_posts", {"tag": "py"})

    first = await harness.poll()
    assert first.baseline is True
    assert first.items == []  # the baseline starts no run
    assert first.result.items == posts(2, 1)
    assert harness.seen == ["2", "1"]
    assert first.cursor == {"since": 2}

    route.respond(json=posts(3, 2, 1))
    second = await harness.poll()
    assert (second.baseline, second.items, second.keys) == (False, posts(3), ["3"])
    assert second.duplicates == posts(2, 1)
    assert route.calls.last.request.url.params["since"] == "2"  # the stored cursor was passed on

    third = await harness.poll()
    assert third.items == []
    assert third.duplicates == posts(3, 2, 1)
    assert harness.fired == posts(3)
    assert harness.polls == 3
    assert harness.log == ["INFO 2 posts", "INFO 3 posts", "INFO 3 posts"]


@respx.mock
async def test_duplicates_inside_one_poll_fire_once() -> None:
    respx.get(f"{API}/posts").respond(json=posts(5, 5, 6))
    harness = PollHarness(feed, "new_posts", baseline=False)
    result = await harness.poll()
    assert result.baseline is False
    assert result.items == posts(5, 6)
    assert result.duplicates == posts(5)


@respx.mock
async def test_the_dedupe_window_is_bounded() -> None:
    route = respx.get(f"{API}/posts").respond(json=posts(1))
    harness = PollHarness(feed, "new_posts", window=2)
    await harness.poll()
    for ids in ((2,), (3,)):
        route.respond(json=posts(*ids))
        await harness.poll()
    assert harness.seen == ["2", "3"]  # 1 was forgotten
    route.respond(json=posts(1))
    assert (await harness.poll()).items == posts(1)


@respx.mock
async def test_a_failed_poll_changes_nothing() -> None:
    route = respx.get(f"{API}/posts").respond(json=posts(1))
    harness = PollHarness(feed, "new_posts")
    await harness.poll()
    route.respond(500)
    with pytest.raises(UpstreamError, match="answered 500"):
        await harness.poll()
    assert (harness.cursor, harness.seen, harness.polls) == ({"since": 1}, ["1"], 1)
    route.mock(side_effect=lambda request: httpx.Response(200, json=posts(2, 1)))
    result = await harness.poll()
    assert result.items == posts(2)
    assert route.calls.last.request.url.params["since"] == "1"


@respx.mock
async def test_starting_from_a_stored_cursor_skips_the_baseline() -> None:
    respx.get(f"{API}/posts").respond(json=posts(8))
    harness = PollHarness(feed, "new_posts", cursor={"since": 7})
    result = await harness.poll()
    assert (result.baseline, result.items) == (False, posts(8))


def test_the_window_defaults_to_the_servers_setting() -> None:
    assert PollHarness(feed, "new_posts").window == 1000
    assert PollHarness(feed, "new_posts", settings=settings_for_tests(poll_dedupe_window=7)).window == 7


def test_only_triggers_can_be_followed() -> None:
    with pytest.raises(KeyError, match="no polling trigger 'ping'"):
        PollHarness(feed, "ping")
    with pytest.raises(ValueError, match="at least one key"):
        PollHarness(feed, "new_posts", window=0)
