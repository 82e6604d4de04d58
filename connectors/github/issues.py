"""Issue operations: list a repository's issues, search issues, create an issue, comment on one."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from app.sdk import Context, InvalidResponse, LinkHeader

from .base import MAX_PER_PAGE, Params, RepoRef, connector
from .models import Comment, Issue

MAX_RESULTS = 1000  # the search API serves at most 1000 results per query
MAX_BODY = 65536


class ListIssuesParams(RepoRef):
    """Which issues of a repository to list."""

    state: Literal["open", "closed", "all"] = Field(default="open", description="Issue state")
    labels: list[str] = Field(default_factory=list, description="Only issues having all these labels")
    assignee: str | None = Field(
        default=None, description="Only issues assigned to this login (`none` or `*` also work)"
    )
    creator: str | None = Field(default=None, description="Only issues opened by this login")
    since: datetime | None = Field(default=None, description="Only issues updated at or after this time")
    sort: Literal["created", "updated", "comments"] = Field(default="created", description="Sort key")
    direction: Literal["asc", "desc"] = Field(default="desc", description="Sort direction")
    limit: int = Field(default=30, ge=1, le=MAX_RESULTS, description="At most this many issues")


class SearchIssuesParams(Params):
    """An issue search, in GitHub's search syntax."""

    q: str = Field(
        min_length=1,
        max_length=256,
        description='Search query, e.g. "repo:python/cpython is:issue is:open label:type-bug"',
    )
    sort: (
        Literal[
            "comments",
            "reactions",
            "reactions-+1",
            "reactions--1",
            "reactions-smile",
            "reactions-thinking_face",
            "reactions-heart",
            "reactions-tada",
            "interactions",
            "created",
            "updated",
        ]
        | None
    ) = Field(default=None, description="Sort key (default: best match)")
    order: Literal["asc", "desc"] = Field(default="desc", description="Sort order, when `sort` is given")
    limit: int = Field(default=30, ge=1, le=MAX_RESULTS, description="At most this many results")


class CreateIssueParams(RepoRef):
    """A new issue."""

    title: str = Field(min_length=1, max_length=256, description="Issue title")
    body: str | None = Field(default=None, max_length=MAX_BODY, description="Issue text (Markdown)")
    labels: list[str] = Field(default_factory=list, description="Label names to set")
    assignees: list[str] = Field(default_factory=list, max_length=10, description="Logins to assign")
    milestone: int | None = Field(default=None, ge=1, description="Milestone number")


class CommentParams(RepoRef):
    """A comment on an issue or pull request."""

    issue_number: int = Field(ge=1, description="The issue or pull request number")
    body: str = Field(min_length=1, max_length=MAX_BODY, description="Comment text (Markdown)")


def _issue_query(params: ListIssuesParams) -> dict[str, Any]:
    query: dict[str, Any] = {
        "state": params.state,
        "sort": params.sort,
        "direction": params.direction,
        "per_page": MAX_PER_PAGE,
    }
    if params.labels:
        query["labels"] = ",".join(params.labels)
    if params.assignee:
        query["assignee"] = params.assignee
    if params.creator:
        query["creator"] = params.creator
    if params.since is not None:
        query["since"] = params.since.isoformat()
    return query


@connector.action(title="List issues")
async def list_issues(ctx: Context, params: ListIssuesParams) -> list[Issue]:
    """A repository's issues, newest first by default; pull requests are left out.

    Follows the Link header across pages until ``limit`` issues are found.
    """
    found: list[Issue] = []
    pages = ctx.paginate(f"{params.path}/issues", strategy=LinkHeader(), params=_issue_query(params))
    async with contextlib.aclosing(pages):
        async for raw in pages:
            if not isinstance(raw, dict):
                raise InvalidResponse("GitHub listed an issue that is not an object")
            if raw.get("pull_request") is not None:
                continue
            found.append(Issue.model_validate(raw))
            if len(found) >= params.limit:
                break
    return found


@connector.action(title="Search issues")
async def search_issues(ctx: Context, params: SearchIssuesParams) -> list[Issue]:
    """Issues and pull requests matching a search query (``is:issue`` keeps issues only).

    The search API serves at most 1000 results and 30 searches a minute.
    """
    query: dict[str, Any] = {"q": params.q, "per_page": min(params.limit, MAX_PER_PAGE)}
    if params.sort is not None:
        query.update(sort=params.sort, order=params.order)
    strategy = LinkHeader(items_path="items")
    return [
        Issue.model_validate(raw)
        async for raw in ctx.paginate("/search/issues", strategy=strategy, params=query, limit=params.limit)
    ]


@connector.action(title="Create issue")
async def create_issue(ctx: Context, params: CreateIssueParams) -> Issue:
    """Open an issue in a repository (needs write access for labels, assignees and milestone)."""
    body: dict[str, Any] = {"title": params.title}
    if params.body is not None:
        body["body"] = params.body
    if params.labels:
        body["labels"] = params.labels
    if params.assignees:
        body["assignees"] = params.assignees
    if params.milestone is not None:
        body["milestone"] = params.milestone
    created = await ctx.request_json("POST", f"{params.path}/issues", json=body)
    return Issue.model_validate(created)


@connector.action(title="Comment on issue")
async def comment_on_issue(ctx: Context, params: CommentParams) -> Comment:
    """Add a comment to an issue or a pull request."""
    created = await ctx.request_json(
        "POST", f"{params.path}/issues/{params.issue_number}/comments", json={"body": params.body}
    )
    return Comment.model_validate(created)
