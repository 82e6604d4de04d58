"""Typed outputs of the ``mastodon`` connector, and the HTML-to-text conversion of status contents."""

from __future__ import annotations

from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

BLOCK_TAGS = frozenset({"p", "div", "blockquote", "li", "pre"})


class _TextExtractor(HTMLParser):
    """Status HTML (``<p>``, ``<br>``, links, mentions) as plain text; entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in BLOCK_TAGS and self.parts and not "".join(self.parts).endswith("\n\n"):
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """The text of a status's HTML content: paragraphs separated by a blank line, tags dropped."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = "".join(parser.parts).split("\n")
    return "\n".join(line.rstrip() for line in lines).strip()


class MastodonModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Account(MastodonModel):
    """The author of a status."""

    id: str
    username: str
    acct: str = Field(description="user for local accounts, user@domain for remote ones")
    display_name: str = ""
    url: str | None = None
    bot: bool = False


class Status(MastodonModel):
    """A status (a post)."""

    id: str = Field(description="The status ID on this instance (a numeric string; newer is bigger)")
    created_at: datetime
    url: str | None = Field(default=None, description="The status's page")
    uri: str = Field(description="The status's ActivityPub URI")
    content: str = Field(default="", description="HTML content")
    text: str = Field(default="", description="The content as plain text")
    spoiler_text: str = Field(default="", description="Content warning")
    visibility: str = Field(default="public", description="public, unlisted, private or direct")
    sensitive: bool = False
    language: str | None = None
    account: Account
    in_reply_to_id: str | None = None
    replies_count: int = 0
    reblogs_count: int = 0
    favourites_count: int = 0
    tags: list[str] = Field(default_factory=list, description="Hashtags, without #")
    media: list[str] = Field(default_factory=list, description="URLs of the attached media")
    reblog_of: str | None = Field(default=None, description="For a boost: the boosted status's URL")

    @model_validator(mode="before")
    @classmethod
    def _from_api(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "text" in data:
            return data
        data = dict(data)
        data["text"] = html_to_text(data.get("content") or "")
        data["tags"] = [t.get("name") for t in data.get("tags") or [] if isinstance(t, dict)]
        data["media"] = [
            m.get("url") for m in data.get("media_attachments") or [] if isinstance(m, dict) and m.get("url")
        ]
        reblog = data.get("reblog")
        data["reblog_of"] = (reblog.get("url") or reblog.get("uri")) if isinstance(reblog, dict) else None
        return data
