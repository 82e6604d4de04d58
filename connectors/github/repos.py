"""Repository operations: list a user's or an organisation's repositories, search repositories."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from app.sdk import Context, LinkHeader

from .base import MAX_PER_PAGE, Owner, Params, connector
from .issues import MAX_RESULTS
from .models import Repository

USER_TYPES = ("all", "owner", "member")


class ListReposParams(Params):
    """Whose repositories to list, and how."""

    owner: Owner = Field(description="User or organisation login")
    owner_type: Literal["user", "org"] = Field(
        default="user", description="Whether `owner` is a user or an organisation"
    )
    type: Literal["all", "owner", "member", "public", "private", "forks", "sources"] | None = Field(
        default=None,
        description="Which repositories (users: all, owner, member; orgs: all, public, private, forks, "
        "sources, member); default: GitHub's (owner for users, all for orgs)",
    )
    sort: Literal["created", "updated", "pushed", "full_name"] | None = Field(
        default=None, description="Sort key (default: full_name for users, created for orgs)"
    )
    direction: Literal["asc", "desc"] | None = Field(
        default=None, description="Sort direction (default: asc for full_name, else desc)"
    )
    limit: int = Field(default=100, ge=1, le=MAX_RESULTS, description="At most this many repositories")

    @model_validator(mode="after")
    def _type_fits_owner(self) -> ListReposParams:
        if self.owner_type == "user" and self.type is not None and self.type not in USER_TYPES:
            raise ValueError(
                f"type {self.type!r} applies to organisations; "
                f"for a user it is one of {', '.join(USER_TYPES)}"
            )
        return self


class SearchReposParams(Params):
    """A repository search, in GitHub's search syntax."""

    q: str = Field(
        min_length=1,
        max_length=256,
        description='Search query, e.g. "topic:mashup language:python stars:>50"',
    )
    sort: Literal["stars", "forks", "help-wanted-issues", "updated"] | None = Field(
        default=None, description="Sort key (default: best match)"
    )
    order: Literal["asc", "desc"] = Field(default="desc", description="Sort order, when `sort` is given")
    limit: int = Field(default=30, ge=1, le=MAX_RESULTS, description="At most this many results")


@connector.action(title="List repositories")
async def list_repos(ctx: Context, params: ListReposParams) -> list[Repository]:
    """The public repositories of a user or an organisation (private ones too when the token may see them)."""
    path = f"/users/{params.owner}/repos" if params.owner_type == "user" else f"/orgs/{params.owner}/repos"
    query: dict[str, Any] = {"per_page": min(params.limit, MAX_PER_PAGE)}
    for name in ("type", "sort", "direction"):
        value = getattr(params, name)
        if value is not None:
            query[name] = value
    return [
        Repository.model_validate(raw)
        async for raw in ctx.paginate(path, strategy=LinkHeader(), params=query, limit=params.limit)
    ]


@connector.action(title="Search repositories")
async def search_repos(ctx: Context, params: SearchReposParams) -> list[Repository]:
    """Repositories matching a search query, best match first unless `sort` is given."""
    query: dict[str, Any] = {"q": params.q, "per_page": min(params.limit, MAX_PER_PAGE)}
    if params.sort is not None:
        query.update(sort=params.sort, order=params.order)
    pages = ctx.paginate(
        "/search/repositories", strategy=LinkHeader(items_path="items"), params=query, limit=params.limit
    )
    return [Repository.model_validate(raw) async for raw in pages]
