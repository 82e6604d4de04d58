"""Triggers: polls for new issues and new releases, and the signed repository webhook.

Polls return the current items on their first call (cursor None), so the platform can record them
as already seen; later calls return what is newer than the cursor.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import Any

from pydantic import Field

from app.sdk import (
    Context,
    HmacSha256,
    InvalidResponse,
    LinkHeader,
    Poll,
    WebhookPayloadInvalid,
    WebhookRequest,
)

from .base import MAX_PER_PAGE, RepoRef, connector
from .models import Event, Issue, Release

POLL_MAX_PAGES = 5  # 500 issues between two polls at most; older ones are left out with a log line


class NewIssuesParams(RepoRef):
    """The repository to watch."""

    labels: list[str] = Field(default_factory=list, description="Only issues having all these labels")


class NewReleasesParams(RepoRef):
    """The repository to watch."""

    include_prereleases: bool = Field(default=True, description="Also fire for pre-releases")


@connector.poll(title="New issue", dedupe=lambda issue: issue.number)
async def new_issues(ctx: Context, params: NewIssuesParams, cursor: int | None) -> Poll[Issue]:
    """Issues opened since the last poll (pull requests left out), oldest first.

    The cursor is the highest issue number seen (issues and pull requests share the numbering).
    """
    query: dict[str, Any] = {"state": "all", "sort": "created", "direction": "desc", "per_page": MAX_PER_PAGE}
    if params.labels:
        query["labels"] = ",".join(params.labels)
    highest = cursor or 0
    found: list[Issue] = []
    reached_cursor = cursor is None
    pages = ctx.paginate(f"{params.path}/issues", strategy=LinkHeader(max_pages=POLL_MAX_PAGES), params=query)
    async with contextlib.aclosing(pages):
        async for raw in pages:
            if not isinstance(raw, dict) or not isinstance(raw.get("number"), int):
                raise InvalidResponse("GitHub listed an issue without a number")
            number = raw["number"]
            if cursor is not None and number <= cursor:
                reached_cursor = True
                break
            highest = max(highest, number)
            if raw.get("pull_request") is None:
                found.append(Issue.model_validate(raw))
            if cursor is None and len(found) >= MAX_PER_PAGE:
                break
    if not reached_cursor:
        ctx.log.warning("more new issues than %s pages; the oldest ones were left out", POLL_MAX_PAGES)
    found.reverse()
    return Poll(items=found, cursor=highest)


@connector.poll(title="New release", dedupe=lambda release: release.id)
async def new_releases(ctx: Context, params: NewReleasesParams, cursor: datetime | None) -> Poll[Release]:
    """Releases published since the last poll, oldest first (drafts never fire).

    The cursor is the latest publication time seen; releases are read from the first page (100) of
    the repository's releases.
    """
    raw_list = await ctx.request_json("GET", f"{params.path}/releases", params={"per_page": MAX_PER_PAGE})
    if not isinstance(raw_list, list):
        raise InvalidResponse("GitHub's release list is not a list")
    releases = [
        Release.model_validate({**raw, "repository": params.full_name})
        for raw in raw_list
        if isinstance(raw, dict)
    ]
    published = [r for r in releases if not r.draft and r.published_at is not None]
    if not params.include_prereleases:
        published = [r for r in published if not r.prerelease]
    newest = max((r.published_at for r in published if r.published_at is not None), default=cursor)
    if cursor is not None:
        published = [r for r in published if r.published_at is not None and r.published_at > cursor]
    published.sort(key=lambda r: (r.published_at, r.id))
    return Poll(items=published, cursor=newest)


def _payload(request: WebhookRequest) -> dict[str, Any]:
    body = request.body
    if isinstance(body, dict) and set(body) == {"payload"} and isinstance(body["payload"], str):
        try:  # the application/x-www-form-urlencoded content type: the JSON is in `payload`
            body = json.loads(body["payload"])
        except ValueError:
            raise WebhookPayloadInvalid("the `payload` form field is not JSON") from None
    if not isinstance(body, dict):
        raise WebhookPayloadInvalid("a GitHub delivery carries a JSON object")
    return body


def _login(payload: dict[str, Any], key: str, field: str) -> str | None:
    value = payload.get(key)
    found = value.get(field) if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


@connector.webhook(
    title="Repository or organisation events",
    verify=HmacSha256(header="X-Hub-Signature-256", prefix="sha256="),
)
async def events(ctx: Context, request: WebhookRequest) -> list[Event]:
    """One item per webhook delivery (issues, pushes, releases, pull requests...); pings start nothing.

    Configure the GitHub webhook with this hook's URL and secret; each delivery is checked against
    ``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body) before anything else. JSON and form
    content types are both accepted.
    """
    name = request.header("x-github-event")
    if not name:
        raise WebhookPayloadInvalid("not a GitHub delivery: the X-GitHub-Event header is missing")
    payload = _payload(request)
    if name == "ping":
        ctx.log.info("ping from GitHub hook %s", payload.get("hook_id"))
        return []
    action = payload.get("action")
    return [
        Event(
            event=name,
            delivery=request.header("x-github-delivery"),
            action=action if isinstance(action, str) else None,
            repository=_login(payload, "repository", "full_name"),
            sender=_login(payload, "sender", "login"),
            payload=payload,
        )
    ]
