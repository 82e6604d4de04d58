"""Typed outputs of the ``github`` connector: the useful fields of GitHub's REST objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, AliasPath, BaseModel, ConfigDict, Field, field_validator, model_validator

USER_LOGIN = AliasChoices(AliasPath("user", "login"), "author")
AUTHOR_LOGIN = AliasChoices(AliasPath("author", "login"), "author")
OWNER_LOGIN = AliasChoices(AliasPath("owner", "login"), "owner")


class GitHubModel(BaseModel):
    """GitHub objects carry many more fields than kept here: they are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _repository_of(api_url: Any) -> str | None:
    """``owner/repo`` from ``https://api.github.com/repos/owner/repo``."""
    if isinstance(api_url, str) and "/repos/" in api_url:
        return api_url.split("/repos/", 1)[1].strip("/") or None
    return None


class Issue(GitHubModel):
    """An issue (or, in search results, a pull request: see ``is_pull_request``)."""

    number: int = Field(description="The issue number in its repository")
    title: str
    state: str = Field(description="open or closed")
    html_url: str = Field(description="The issue's page")
    body: str | None = Field(default=None, description="Markdown text")
    author: str | None = Field(default=None, validation_alias=USER_LOGIN)
    labels: list[str] = Field(default_factory=list, description="Label names")
    assignees: list[str] = Field(default_factory=list, description="Assignee logins")
    comments: int = Field(default=0, description="Number of comments")
    repository: str | None = Field(default=None, description="owner/repo")
    is_pull_request: bool = False
    created_at: datetime
    updated_at: datetime | None = None
    closed_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_api(cls, data: Any) -> Any:
        if isinstance(data, dict) and "html_url" in data and "is_pull_request" not in data:
            data = dict(data)
            data["is_pull_request"] = data.get("pull_request") is not None
            data.setdefault("repository", _repository_of(data.get("repository_url")))
            assignees = data.get("assignees") or []
            data["assignees"] = [a.get("login") if isinstance(a, dict) else a for a in assignees]
        return data

    @field_validator("labels", mode="before")
    @classmethod
    def _label_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [item.get("name") if isinstance(item, dict) else item for item in value]
        return value


class Repository(GitHubModel):
    """A repository."""

    id: int
    name: str
    full_name: str = Field(description="owner/repo")
    owner: str | None = Field(default=None, validation_alias=OWNER_LOGIN)
    html_url: str
    description: str | None = None
    private: bool = False
    fork: bool = False
    archived: bool = False
    language: str | None = None
    topics: list[str] = Field(default_factory=list)
    stars: int = Field(default=0, validation_alias=AliasChoices("stargazers_count", "stars"))
    forks: int = Field(default=0, validation_alias=AliasChoices("forks_count", "forks"))
    open_issues: int = Field(default=0, validation_alias=AliasChoices("open_issues_count", "open_issues"))
    default_branch: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    pushed_at: datetime | None = None


class Comment(GitHubModel):
    """A comment on an issue or pull request."""

    id: int
    html_url: str
    body: str | None = None
    author: str | None = Field(default=None, validation_alias=USER_LOGIN)
    created_at: datetime
    updated_at: datetime | None = None


class Release(GitHubModel):
    """A published release."""

    id: int
    tag_name: str
    name: str | None = None
    html_url: str
    body: str | None = Field(default=None, description="Release notes (Markdown)")
    draft: bool = False
    prerelease: bool = False
    author: str | None = Field(default=None, validation_alias=AUTHOR_LOGIN)
    repository: str | None = Field(default=None, description="owner/repo")
    created_at: datetime | None = None
    published_at: datetime | None = None


class Event(GitHubModel):
    """One webhook delivery."""

    event: str = Field(description="The X-GitHub-Event header: issues, push, release, pull_request...")
    delivery: str | None = Field(default=None, description="The X-GitHub-Delivery id, unique per delivery")
    action: str | None = Field(default=None, description="The payload's action: opened, closed, published...")
    repository: str | None = Field(default=None, description="owner/repo")
    sender: str | None = Field(default=None, description="Login of the user who triggered the event")
    payload: dict[str, Any] = Field(description="The whole JSON payload")
