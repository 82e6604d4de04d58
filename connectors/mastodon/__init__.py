"""Mastodon (https://docs.joinmastodon.org): post statuses, read timelines, poll for new statuses.

Every instance is its own API: the connection holds the instance host next to the token
(``{"kind": "bearer", "token": "...", "instance": "mastodon.social"}``; the token comes from
Preferences > Development, scopes ``read`` and ``write:statuses``). Public timelines also work
without a token (``{"kind": "none", "instance": "mastodon.social"}``) on instances that allow it.

Timelines page with the ``Link`` header (``max_id``). Posting sends an ``Idempotency-Key``: by
default derived from the run, the step and the status, so a retried step never posts twice
(Mastodon keeps keys an hour). Mastodon allows 300 requests per 5 minutes per account (declared
as 60 a minute).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.sdk import (
    BearerToken,
    Connector,
    Context,
    CredentialField,
    InvalidResponse,
    LinkHeader,
    NoAuth,
    Poll,
    RateLimit,
)

from .models import Account, Status, html_to_text

connector = Connector(
    key="mastodon",
    version="1.0.0",
    title="Mastodon",
    description="Post statuses and read the home, public and hashtag timelines of any Mastodon instance.",
    base_url="https://{instance}",
    auth=[
        BearerToken(
            label="Access token",
            extra_fields=[CredentialField("instance", "Instance host, e.g. mastodon.social", secret=False)],
        ),
        NoAuth(label="No token (public timelines)"),
    ],
    rate_limit=RateLimit(60, per="minute"),
    test_request=("GET", "/api/v1/accounts/verify_credentials"),
    docs_url="https://docs.joinmastodon.org/methods/statuses/",
)

MAX_PAGE = 40  # Mastodon serves at most 40 statuses per timeline page
MAX_RESULTS = 400
POLL_MAX_PAGES = 5
STATUS_ID_RE = r"^[0-9]{1,30}$"
HASHTAG_RE = re.compile(r"^\w{1,100}$")


def status_id_key(status_id: str) -> tuple[int, str]:
    """Sort key of Mastodon IDs: numeric strings of growing length, compared as numbers."""
    return (len(status_id), status_id)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PostStatusParams(Params):
    """A status to publish."""

    status: str = Field(
        min_length=1, max_length=5000, description="The text (instances allow 500 by default)"
    )
    visibility: Literal["public", "unlisted", "private", "direct"] = Field(
        default="public", description="Who sees it"
    )
    spoiler_text: str | None = Field(default=None, max_length=500, description="Content warning shown first")
    sensitive: bool = Field(default=False, description="Mark the attached media as sensitive")
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}$", description="ISO 639-1 language code")
    in_reply_to_id: str | None = Field(default=None, pattern=STATUS_ID_RE, description="Reply to this status")
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Idempotency-Key header (default: derived from the run, the step and the status)",
    )


class TimelinePage(Params):
    """Which part of a timeline to read."""

    limit: int = Field(default=40, ge=1, le=MAX_RESULTS, description="At most this many statuses")
    max_id: str | None = Field(
        default=None, pattern=STATUS_ID_RE, description="Only statuses older than this ID"
    )
    since_id: str | None = Field(
        default=None, pattern=STATUS_ID_RE, description="Only statuses newer than this ID"
    )

    def query(self) -> dict[str, Any]:
        query: dict[str, Any] = {"limit": min(self.limit, MAX_PAGE)}
        if self.max_id is not None:
            query["max_id"] = self.max_id
        if self.since_id is not None:
            query["since_id"] = self.since_id
        return query


class HomeTimelineParams(TimelinePage):
    """The home timeline of the connection's account (needs a token)."""


class PublicTimelineParams(TimelinePage):
    """The instance's public timeline."""

    local: bool = Field(default=False, description="Only statuses of this instance's accounts")
    remote: bool = Field(default=False, description="Only statuses of other instances' accounts")
    only_media: bool = Field(default=False, description="Only statuses with media")

    def query(self) -> dict[str, Any]:
        query = super().query()
        for flag in ("local", "remote", "only_media"):
            if getattr(self, flag):
                query[flag] = "true"
        return query


def _hashtag(value: str) -> str:
    tag = value.strip().removeprefix("#")
    if not HASHTAG_RE.match(tag):
        raise ValueError("a hashtag is letters, digits and _ (the # is optional)")
    return tag


class HashtagTimelineParams(PublicTimelineParams):
    """Public statuses with a hashtag."""

    hashtag: str = Field(description="The hashtag, with or without #")
    any: list[str] = Field(default_factory=list, description="Or any of these hashtags too")

    _tag = field_validator("hashtag")(_hashtag)

    @field_validator("any")
    @classmethod
    def _tags(cls, values: list[str]) -> list[str]:
        return [_hashtag(value) for value in values]

    def query(self) -> dict[str, Any]:
        query = super().query()
        if self.any:
            query["any[]"] = self.any
        return query


class NewStatusesParams(Params):
    """The timeline to watch."""

    timeline: Literal["home", "public", "local", "hashtag"] = Field(
        default="home", description="home (needs a token), public, local (this instance) or hashtag"
    )
    hashtag: str | None = Field(default=None, description="With timeline hashtag: the hashtag to watch")
    only_media: bool = Field(default=False, description="Only statuses with media (public timelines)")

    @model_validator(mode="after")
    def _hashtag_when_needed(self) -> NewStatusesParams:
        if self.timeline == "hashtag":
            if not self.hashtag:
                raise ValueError("timeline hashtag needs `hashtag`")
            self.hashtag = _hashtag(self.hashtag)
        elif self.hashtag is not None:
            raise ValueError("`hashtag` only applies to timeline hashtag")
        return self

    def path_and_query(self) -> tuple[str, dict[str, Any]]:
        if self.timeline == "home":
            return "/api/v1/timelines/home", {}
        query: dict[str, Any] = {"only_media": "true"} if self.only_media else {}
        if self.timeline == "local":
            query["local"] = "true"
        if self.timeline == "hashtag":
            return f"/api/v1/timelines/tag/{self.hashtag}", query
        return "/api/v1/timelines/public", query


def idempotency_key(ctx: Context, params: PostStatusParams) -> str:
    """The given key, or one derived from the run, the step and the status (stable across retries)."""
    if params.idempotency_key:
        return params.idempotency_key
    content = params.model_dump(mode="json", exclude={"idempotency_key"})
    seed = json.dumps([ctx.run_id, ctx.step_id, content], sort_keys=True, separators=(",", ":"))
    return "mashpipe-" + hashlib.sha256(seed.encode()).hexdigest()[:40]


async def _timeline(ctx: Context, path: str, page: TimelinePage) -> list[Status]:
    statuses = ctx.paginate(path, strategy=LinkHeader(), params=page.query(), limit=page.limit)
    return [Status.model_validate(raw) async for raw in statuses]


@connector.action(title="Post status")
async def post_status(ctx: Context, params: PostStatusParams) -> Status:
    """Publish a status from the connection's account; returns it.

    Sends an ``Idempotency-Key`` so a retry of the step returns the first status instead of posting
    a duplicate.
    """
    body: dict[str, Any] = {"status": params.status, "visibility": params.visibility}
    for name in ("spoiler_text", "language", "in_reply_to_id"):
        value = getattr(params, name)
        if value is not None:
            body[name] = value
    if params.sensitive:
        body["sensitive"] = True
    key = idempotency_key(ctx, params)
    created = await ctx.request_json("POST", "/api/v1/statuses", json=body, headers={"Idempotency-Key": key})
    return Status.model_validate(created)


@connector.action(title="Home timeline")
async def home_timeline(ctx: Context, params: HomeTimelineParams) -> list[Status]:
    """Statuses of the accounts the connection's account follows, newest first (needs a token)."""
    return await _timeline(ctx, "/api/v1/timelines/home", params)


@connector.action(title="Public timeline")
async def public_timeline(ctx: Context, params: PublicTimelineParams) -> list[Status]:
    """The instance's public (federated, or ``local``) timeline, newest first."""
    return await _timeline(ctx, "/api/v1/timelines/public", params)


@connector.action(title="Hashtag timeline")
async def hashtag_timeline(ctx: Context, params: HashtagTimelineParams) -> list[Status]:
    """Public statuses carrying a hashtag (or any of ``any``), newest first."""
    return await _timeline(ctx, f"/api/v1/timelines/tag/{params.hashtag}", params)


@connector.poll(title="New status", dedupe=lambda status: status.id)
async def new_statuses(ctx: Context, params: NewStatusesParams, cursor: str | None) -> Poll[Status]:
    """Statuses that appeared on a timeline since the last poll, oldest first.

    The cursor is the newest status ID seen. The first poll returns the latest 20 statuses; later
    polls page forward from the cursor with ``min_id`` (up to 5 pages of 40 each time; more waits for
    the next poll, nothing is skipped).
    """
    path, base = params.path_and_query()
    if cursor is None:
        raw = await ctx.request_json("GET", path, params={**base, "limit": 20})
        found = _statuses(raw)
    else:
        found = []
        newest = cursor
        for _ in range(POLL_MAX_PAGES):
            page = _statuses(
                await ctx.request_json("GET", path, params={**base, "min_id": newest, "limit": MAX_PAGE})
            )
            fresh = [s for s in page if status_id_key(s.id) > status_id_key(newest)]
            found.extend(fresh)
            if not fresh:
                break
            newest = max((s.id for s in fresh), key=status_id_key)
            if len(page) < MAX_PAGE:
                break
        else:
            ctx.log.warning(
                "more than %s pages of new statuses; the rest comes with the next poll", POLL_MAX_PAGES
            )
    unique = {status.id: status for status in found}
    ordered = sorted(unique.values(), key=lambda status: status_id_key(status.id))
    # An empty timeline at the first poll: "0", so the next poll pages forward from the very start.
    latest = ordered[-1].id if ordered else (cursor or "0")
    return Poll(items=ordered, cursor=latest)


def _statuses(raw: Any) -> list[Status]:
    if not isinstance(raw, list):
        raise InvalidResponse("the Mastodon timeline is not a list")
    return [Status.model_validate(item) for item in raw]


__all__ = ["Account", "Status", "connector", "html_to_text"]
