"""``hackernews``: Hacker News stories, items and users from the official Firebase API.

The API (https://github.com/HackerNews/API) is public, needs no key and documents no rate limit. A
listing (``/topstories.json``, ``/newstories.json``, ``/beststories.json``) gives up to 500 item ids;
each item is then fetched from ``/item/{id}.json``, ``concurrency`` at a time.

* ``hackernews.top_stories`` / ``newest_stories`` / ``best_stories``: the first ``limit`` stories of
  a listing, in the listing's order, deleted and dead items left out.
* ``hackernews.item``: any item (story, comment, job, poll, poll option) by id.
* ``hackernews.user``: a user's profile.
* poll ``hackernews.new_stories``: stories submitted since the last poll; the cursor is the highest
  story id seen (operation names are shared by actions and polls, hence ``newest_stories`` for the
  action reading the same listing).

Every story has ``url`` (the link; for Ask HN and other text posts, the discussion page) and
``hn_url`` (always the discussion page), so pipelines can use ``item.url`` on any story.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.sdk import Connector, Context, InvalidResponse, NotFound, Poll

BASE_URL = "https://hacker-news.firebaseio.com/v0"
ITEM_PAGE = "https://news.ycombinator.com/item?id={id}"
USER_PAGE = "https://news.ycombinator.com/user?id={id}"
MAX_SUBMITTED = 100

connector = Connector(
    key="hackernews",
    version="1.0.0",
    title="Hacker News",
    description="Top, new and best Hacker News stories, items and users (official Firebase API, no key).",
    base_url=BASE_URL,
    docs_url="https://github.com/HackerNews/API",
)

Listing = Literal["topstories", "newstories", "beststories"]


class StoriesParams(BaseModel):
    """Which part of a story listing to read."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=30, ge=1, le=500, description="How many stories to return (the API lists 500)")
    concurrency: int = Field(
        default=10, ge=1, le=32, description="How many items are fetched from the API at once"
    )


class ItemParams(BaseModel):
    """One item by id."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=1, description="The item's id (the number in news.ycombinator.com/item?id=...)")


class UserParams(BaseModel):
    """One user by name."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The user's name, case-sensitive (pg, dang...)",
    )


class NewStoriesParams(BaseModel):
    """How many new stories one poll may return."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(
        default=30, ge=1, le=500, description="At most this many stories per poll (the oldest first)"
    )
    concurrency: int = Field(
        default=10, ge=1, le=32, description="How many items are fetched from the API at once"
    )


def _with_links(data: Any) -> Any:
    """Add ``hn_url``, and make ``url`` the discussion page when the item links nowhere."""
    if isinstance(data, dict) and "id" in data:
        data = dict(data)
        page = ITEM_PAGE.format(id=data["id"])
        data.setdefault("hn_url", page)
        if not data.get("url"):
            data["url"] = page
    return data


class Story(BaseModel):
    """A story (or job, or poll) of a listing."""

    model_config = ConfigDict(extra="ignore")

    id: int = Field(description="Item id")
    type: str = Field(description="story, job or poll")
    title: str = Field(default="", description="Title")
    url: str = Field(description="The linked page; the discussion page for text posts (Ask HN...)")
    hn_url: str = Field(description="The discussion page on news.ycombinator.com")
    by: str | None = Field(default=None, description="Author's user name")
    time: datetime | None = Field(default=None, description="Submission time (UTC)")
    score: int = Field(default=0, description="Points")
    descendants: int = Field(default=0, description="Number of comments")
    text: str | None = Field(default=None, description="Text of a text post (HTML)")

    _links = model_validator(mode="before")(_with_links)


class Item(BaseModel):
    """Any item: story, comment, job, poll or poll option."""

    model_config = ConfigDict(extra="ignore")

    id: int = Field(description="Item id")
    type: str = Field(description="job, story, comment, poll or pollopt")
    by: str | None = Field(default=None, description="Author's user name")
    time: datetime | None = Field(default=None, description="Creation time (UTC)")
    title: str | None = Field(default=None, description="Title (stories, polls, jobs)")
    url: str = Field(description="The linked page; the discussion page when there is none")
    hn_url: str = Field(description="The item's page on news.ycombinator.com")
    text: str | None = Field(default=None, description="Text (comments, text posts), HTML")
    score: int | None = Field(default=None, description="Points (stories, polls)")
    descendants: int | None = Field(default=None, description="Number of comments (stories, polls)")
    parent: int | None = Field(default=None, description="Parent item (comments, poll options)")
    poll: int | None = Field(default=None, description="The poll of a poll option")
    kids: list[int] = Field(default_factory=list, description="Direct replies, in ranked order")
    parts: list[int] = Field(default_factory=list, description="A poll's options")
    deleted: bool = Field(default=False, description="The item was deleted")
    dead: bool = Field(default=False, description="The item is dead (flagged or killed)")

    _links = model_validator(mode="before")(_with_links)


class User(BaseModel):
    """A user's public profile."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(description="User name")
    created: datetime = Field(description="Account creation time (UTC)")
    karma: int = Field(default=0, description="Karma")
    about: str | None = Field(default=None, description="Self-description (HTML)")
    url: str = Field(description="The profile page on news.ycombinator.com")
    submitted_count: int = Field(description="How many items the user submitted")
    submitted: list[int] = Field(
        default_factory=list, description=f"The {MAX_SUBMITTED} most recent submitted item ids"
    )


async def _ids(ctx: Context, listing: Listing) -> list[int]:
    """The item ids of a listing, in its order."""
    ids = await ctx.request_json("GET", f"/{listing}.json")
    if ids is None:
        return []
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise InvalidResponse(f"hackernews: /{listing}.json is not a list of item ids")
    return ids


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def fetch_items(ctx: Context, ids: list[int], concurrency: int) -> list[Any]:
    """The raw JSON of each item in ``ids`` (None for a missing one), in order, ``concurrency`` at once.

    The first failure cancels the requests still running and is raised as is.
    """
    results: list[Any] = [None] * len(ids)
    gate = asyncio.Semaphore(concurrency)

    async def fetch(index: int, item_id: int) -> None:
        async with gate:
            results[index] = await ctx.request_json("GET", f"/item/{item_id}.json")

    try:
        async with asyncio.TaskGroup() as group:
            for index, item_id in enumerate(ids):
                group.create_task(fetch(index, item_id))
    except BaseExceptionGroup as errors:
        raise _first_error(errors) from None
    return results


def _live(raw: Any) -> bool:
    return isinstance(raw, dict) and not raw.get("deleted") and not raw.get("dead")


async def _stories(ctx: Context, ids: list[int], concurrency: int) -> list[Story]:
    raws = await fetch_items(ctx, ids, concurrency)
    return [Story.model_validate(raw) for raw in raws if _live(raw)]


async def _listing(ctx: Context, listing: Listing, params: StoriesParams) -> list[Story]:
    ids = await _ids(ctx, listing)
    return await _stories(ctx, ids[: params.limit], params.concurrency)


@connector.action(title="Top stories")
async def top_stories(ctx: Context, params: StoriesParams) -> list[Story]:
    """The current front page ranking: the first ``limit`` top stories (deleted and dead ones left out)."""
    return await _listing(ctx, "topstories", params)


@connector.action(title="Newest stories")
async def newest_stories(ctx: Context, params: StoriesParams) -> list[Story]:
    """The newest ``limit`` stories, newest first (deleted and dead ones left out)."""
    return await _listing(ctx, "newstories", params)


@connector.action(title="Best stories")
async def best_stories(ctx: Context, params: StoriesParams) -> list[Story]:
    """The first ``limit`` best stories (highest-voted recent stories)."""
    return await _listing(ctx, "beststories", params)


@connector.action(title="Item")
async def item(ctx: Context, params: ItemParams) -> Item:
    """One item by id: a story, comment, job, poll or poll option. A missing id fails with not_found."""
    raw = await ctx.request_json("GET", f"/item/{params.id}.json")
    if raw is None:
        raise NotFound(f"hackernews: there is no item {params.id}", status_code=404)
    return Item.model_validate(raw)


@connector.action(title="User")
async def user(ctx: Context, params: UserParams) -> User:
    """A user's profile: karma, creation time, about text and most recent submissions."""
    raw = await ctx.request_json("GET", f"/user/{params.id}.json")
    if raw is None:
        raise NotFound(f"hackernews: there is no user {params.id!r}", status_code=404)
    if not isinstance(raw, dict):
        raise InvalidResponse(f"hackernews: user {params.id!r} is not an object")
    submitted = raw.get("submitted") or []
    return User.model_validate(
        {
            **raw,
            "url": USER_PAGE.format(id=raw.get("id", params.id)),
            "submitted_count": len(submitted),
            "submitted": submitted[:MAX_SUBMITTED],
        }
    )


@connector.poll(title="New story", dedupe=lambda story: story.id)
async def new_stories(ctx: Context, params: NewStoriesParams, cursor: int | None) -> Poll[Story]:
    """Stories submitted since the last poll.

    The cursor is the highest story id handed out so far (ids grow with time). The first poll
    (no cursor) returns the newest ``limit`` stories so the platform can record a baseline. Later
    polls return the stories with a higher id, oldest first and at most ``limit`` of them; the
    cursor moves to the last one returned, so a burst larger than ``limit`` is caught up over the
    next polls. Deleted and dead stories are skipped.
    """
    ids = await _ids(ctx, "newstories")
    if cursor is None:
        chosen = ids[: params.limit]
    else:
        chosen = sorted(i for i in ids if i > cursor)[: params.limit]
    stories = await _stories(ctx, chosen, params.concurrency)
    new_cursor = max([*chosen, cursor or 0]) or None
    return Poll(items=stories, cursor=new_cursor)
