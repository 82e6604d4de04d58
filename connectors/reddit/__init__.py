"""``reddit``: subreddit listings from Reddit's public JSON, and a trigger on new posts.

* ``reddit.posts`` reads ``https://www.reddit.com/r/{subreddit}/{sort}.json`` (hot, new, top, rising,
  controversial; ``t`` for top/controversial), following the listing's ``after`` cursor page by page
  (100 posts a page) until ``limit`` posts.
* poll ``reddit.new_posts`` returns the posts of ``/new`` not seen before (dedupe key: the post's
  fullname ``t3_...``).

Reddit asks API clients for a descriptive User-Agent (``<platform>:<app ID>:<version> (by ...)``;
generic ones are throttled hard), so every request carries :data:`USER_AGENT`. ``raw_json=1`` keeps
``&``, ``<`` and ``>`` unescaped in titles and texts. Unauthenticated clients get a small quota: the
connector keeps to 10 requests a minute, and a 429 is retried after Reddit's ``Retry-After``.

``subreddit`` is a name (``python``), several joined with ``+`` (``python+rust``), or ``all`` /
``popular``; a leading ``r/`` is accepted. A missing subreddit fails with ``not_found``; a private,
quarantined or banned one with ``auth_failed`` (Reddit answers 403).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from app.sdk import AuthFailed, Connector, Context, CursorInBody, NotFound, Poll, RateLimit

BASE_URL = "https://www.reddit.com"
VERSION = "1.0.0"
USER_AGENT = f"server:io.mashpipe.connector.reddit:v{VERSION} (+https://github.com/mashpipe)"
PAGE_SIZE = 100
MAX_SEEN = 500
# A listing page: posts under data.children, the next page's cursor in data.after (sent as ?after=).
LISTING = CursorInBody("data.after", "after", items_path="data.children", max_pages=10)
SUBREDDIT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}(?:\+[A-Za-z0-9][A-Za-z0-9_]{1,20})*$")

connector = Connector(
    key="reddit",
    version=VERSION,
    title="Reddit",
    description="Posts of any public subreddit (hot, new, top...) and a trigger on new posts.",
    base_url=BASE_URL,
    rate_limit=RateLimit(10, per="minute"),
    docs_url="https://www.reddit.com/dev/api/#GET_hot",
)

Sort = Literal["hot", "new", "top", "rising", "controversial"]
Period = Literal["hour", "day", "week", "month", "year", "all"]


def _subreddit(value: str) -> str:
    name = value.strip().removeprefix("/").removeprefix("r/")
    if not SUBREDDIT_RE.match(name):
        raise ValueError(
            "a subreddit name is 2-21 letters, digits or _ (several may be joined with +), such as python"
        )
    return name


class PostsParams(BaseModel):
    """A subreddit listing to read."""

    model_config = ConfigDict(extra="forbid")

    subreddit: str = Field(description="Subreddit name (python), several joined with + (python+rust), or all")
    sort: Sort = Field(default="hot", description="Listing order: hot, new, top, rising or controversial")
    time: Period | None = Field(
        default=None, description="Period for top and controversial: hour, day, week, month, year or all"
    )
    limit: int = Field(default=25, ge=1, le=1000, description="How many posts to return (100 per request)")

    _check_subreddit = field_validator("subreddit")(_subreddit)

    @model_validator(mode="after")
    def _period_only_for_ranked(self) -> PostsParams:
        if self.time is not None and self.sort not in ("top", "controversial"):
            raise ValueError("time applies only to sort: top or controversial")
        return self


class NewPostsParams(BaseModel):
    """A subreddit to watch."""

    model_config = ConfigDict(extra="forbid")

    subreddit: str = Field(description="Subreddit name (python), several joined with + (python+rust), or all")
    limit: int = Field(
        default=25, ge=1, le=100, description="How many of the newest posts each poll reads (one request)"
    )

    _check_subreddit = field_validator("subreddit")(_subreddit)


def _absolute(data: Any) -> Any:
    if isinstance(data, dict) and isinstance(data.get("permalink"), str):
        data = dict(data)
        if data["permalink"].startswith("/"):
            data["permalink"] = BASE_URL + data["permalink"]
    return data


class Post(BaseModel):
    """A post (a "link", kind t3)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(description="Post id (base 36)")
    name: str = Field(description="Fullname, t3_ followed by the id")
    title: str = Field(description="Title")
    author: str = Field(description="Author's user name ([deleted] when deleted)")
    subreddit: str = Field(description="Subreddit name")
    url: str = Field(description="The link of a link post; the post itself for a text post")
    permalink: str = Field(description="The post's comments page")
    selftext: str = Field(default="", description="Text of a text post (Markdown)")
    score: int = Field(default=0, description="Score (upvotes minus downvotes, fuzzed)")
    num_comments: int = Field(default=0, description="Number of comments")
    created: datetime = Field(
        validation_alias=AliasChoices("created_utc", "created"), description="Creation time (UTC)"
    )
    over_18: bool = Field(default=False, description="Marked NSFW")
    is_self: bool = Field(default=False, description="A text post")
    stickied: bool = Field(default=False, description="Pinned by the moderators")
    flair: str | None = Field(
        default=None,
        validation_alias=AliasChoices("link_flair_text", "flair"),
        description="The post's flair text",
    )
    domain: str | None = Field(default=None, description="Domain of the link (self.<subreddit> for text)")

    _links = model_validator(mode="before")(_absolute)


def _posts(children: list[Any]) -> list[Post]:
    """The posts among listing children; a listing of subreddits means Reddit redirected to a search."""
    posts = []
    for child in children:
        if not isinstance(child, dict):
            continue
        if child.get("kind") == "t5":
            raise NotFound(
                "reddit: no such subreddit (Reddit answered with a subreddit search)", status_code=404
            )
        if child.get("kind") == "t3":
            posts.append(Post.model_validate(child.get("data")))
    return posts


def _private(subreddit: str, error: AuthFailed) -> AuthFailed:
    """A 403 reworded into something a user can act on (Reddit's own message is only "Forbidden")."""
    if error.status_code != 403:
        return error
    return AuthFailed(
        f"reddit: r/{subreddit} is private, quarantined or banned (403)",
        status_code=403,
        details=error.details,
    )


async def _collect(subreddit: str, pages: AsyncIterator[Any]) -> list[Any]:
    """Every item of ``pages``, with a 403 reworded by :func:`_private`."""
    try:
        return [child async for child in pages]
    except AuthFailed as exc:
        raise _private(subreddit, exc) from None


@connector.action(title="Subreddit posts")
async def posts(ctx: Context, params: PostsParams) -> list[Post]:
    """Posts of a subreddit listing (hot, new, top, rising, controversial), up to ``limit``.

    Pages of 100 are read with Reddit's ``after`` cursor until ``limit`` posts or the listing's end.
    """
    query: dict[str, Any] = {"limit": min(params.limit, PAGE_SIZE), "raw_json": 1}
    if params.time is not None:
        query["t"] = params.time
    pages = ctx.paginate(
        f"/r/{params.subreddit}/{params.sort}.json",
        strategy=LISTING,
        params=query,
        headers={"User-Agent": USER_AGENT},
        limit=params.limit,
    )
    return _posts(await _collect(params.subreddit, pages))


@connector.poll(title="New post", dedupe=lambda post: post.name)
async def new_posts(ctx: Context, params: NewPostsParams, cursor: list[str] | None) -> Poll[Post]:
    """Posts of a subreddit's ``/new`` listing not returned by an earlier poll.

    The cursor is the list of post fullnames (``t3_...``) seen so far, newest first, at most 500.
    The first poll returns the current newest ``limit`` posts (the platform's baseline). Each poll
    reads one page: more than ``limit`` posts between two polls means the oldest are missed, so
    poll more often or raise ``limit`` for a busy subreddit. A post appearing late in ``/new``
    (approved by a moderator, for instance) is still caught, as its fullname is new.
    """
    try:
        body = await ctx.request_json(
            "GET",
            f"/r/{params.subreddit}/new.json",
            params={"limit": params.limit, "raw_json": 1},
            headers={"User-Agent": USER_AGENT},
        )
    except AuthFailed as exc:
        raise _private(params.subreddit, exc) from None
    current = _posts(LISTING.items(body))
    seen = set(cursor or ())
    fresh = current if cursor is None else [post for post in current if post.name not in seen]
    names = [post.name for post in current]
    name_set = set(names)
    kept = names + [name for name in cursor or () if name not in name_set]
    return Poll(items=fresh, cursor=kept[:MAX_SEEN])
