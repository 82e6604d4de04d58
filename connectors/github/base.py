"""The ``github`` connector object and what its operations share: headers, name checks, the request shape."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.sdk import BearerToken, Connector, OAuth2, RateLimit

API_VERSION = "2022-11-28"
MAX_PER_PAGE = 100

connector = Connector(
    key="github",
    version="1.0.0",
    title="GitHub",
    description="Issues, repositories and releases on GitHub: list, search, create, comment; new-item "
    "polls and signed repository webhooks.",
    base_url="https://api.github.com",
    auth=[
        OAuth2(
            authorize_url="https://github.com/login/oauth/authorize",
            token_url="https://github.com/login/oauth/access_token",
            scopes=["repo"],
        ),
        BearerToken(label="Personal access token"),
    ],
    rate_limit=RateLimit(5000, per="hour"),
    test_request=("GET", "/user"),
    docs_url="https://docs.github.com/en/rest",
    headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION},
)

_OWNER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_REPO_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def _owner(value: str) -> str:
    if not _OWNER_RE.match(value):
        raise ValueError("a GitHub user or organisation login: letters, digits and hyphens, at most 39")
    return value


def _repo(value: str) -> str:
    if not _REPO_RE.match(value) or value in (".", ".."):
        raise ValueError("a repository name: letters, digits, '.', '_' and '-', at most 100")
    return value


Owner = Annotated[str, AfterValidator(_owner)]
RepoName = Annotated[str, AfterValidator(_repo)]


class Params(BaseModel):
    """Base of every parameter model: unknown keys are refused (a typo is an error, not a no-op)."""

    model_config = ConfigDict(extra="forbid")


class RepoRef(Params):
    """A repository, as ``owner`` and ``repo``."""

    owner: Owner = Field(description="The account owning the repository (user or organisation login)")
    repo: RepoName = Field(description="The repository name, without the owner")

    @property
    def path(self) -> str:
        """``/repos/{owner}/{repo}``."""
        return f"/repos/{self.owner}/{self.repo}"

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"
