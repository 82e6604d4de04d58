"""``rss``: read RSS 2.0, RSS 1.0 (RDF), RSS 0.9x and Atom feeds, and fire on new entries.

* ``rss.read`` fetches a feed and returns ``{title, link, description, updated, language, version,
  entries}``; each entry has ``id``, ``title``, ``link`` and ``url`` (the same value, so pipelines
  mixing sources can use ``item.url``), ``summary`` (sanitized HTML), ``published`` and ``updated``
  (ISO 8601, UTC), ``author``, ``tags`` and ``enclosures``.
* poll ``rss.new_entries`` returns the entries not seen before (dedupe key: the entry ``id``, which
  is the guid / Atom id, else the link, else a hash of title, summary and date).

Feeds are fetched through ``ctx.http`` (egress guard, size cap) and parsed from the bytes: the XML is
first checked with defusedxml (no entity declarations, no external entities: a billion-laughs or
XXE feed fails with ``invalid_response``), then read by feedparser (see :mod:`connectors.rss.parsing`).

The poll's cursor is ``{seen, etag, last_modified}``: ``seen`` holds short digests (16 hex
characters of SHA-256) of the entry ids already handed out, the feed's current entries first, at
most 1000 (or the feed's size if larger); ``etag`` and ``last_modified`` come from the last answer and
are sent back as ``If-None-Match`` / ``If-Modified-Since``, so an unchanged feed costs a 304.
"""

from __future__ import annotations

import asyncio
import hashlib

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.sdk import Connector, Context, Poll, raise_for_response
from connectors.rss.parsing import Enclosure, Entry, Feed, guard_xml, parse_feed

__all__ = ["Enclosure", "Entry", "Feed", "FeedCursor", "connector", "guard_xml", "parse_feed"]

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
MAX_SEEN = 1000

connector = Connector(
    key="rss",
    version="1.0.0",
    title="RSS and Atom feeds",
    description=(
        "Read RSS 2.0, RSS 1.0 and Atom feeds, and fire on new entries (parsed safely: no XML entities)."
    ),
    docs_url="https://www.rssboard.org/rss-specification",
)


def _absolute_http_url(value: str) -> str:
    try:
        url = httpx.URL(value.strip())
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("an absolute http:// or https:// feed URL is required")
    return str(url)


class ReadParams(BaseModel):
    """A feed to read."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="The feed's absolute http(s) URL")
    limit: int = Field(
        default=50, ge=1, le=1000, description="At most this many entries, in the feed's order"
    )

    _check_url = field_validator("url")(_absolute_http_url)


class NewEntriesParams(BaseModel):
    """A feed to watch."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="The feed's absolute http(s) URL")
    limit: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="At most this many new entries per poll; the others are returned by the next polls",
    )

    _check_url = field_validator("url")(_absolute_http_url)


class FeedCursor(BaseModel):
    """What ``rss.new_entries`` remembers between polls."""

    model_config = ConfigDict(extra="ignore")

    seen: list[str] = Field(default_factory=list, description="Digests of the entry ids already returned")
    etag: str | None = Field(default=None, description="The feed's last ETag")
    last_modified: str | None = Field(default=None, description="The feed's last Last-Modified")


def digest(entry_id: str) -> str:
    """The short digest of an entry id kept in the poll cursor."""
    return hashlib.sha256(entry_id.encode("utf-8")).hexdigest()[:16]


async def _parse(response: httpx.Response) -> Feed:
    """The feed in a read response (parsed in a worker thread: feedparser is CPU-bound)."""
    return await asyncio.to_thread(
        parse_feed,
        response.content,
        url=str(response.url),
        content_type=response.headers.get("content-type"),
    )


@connector.action(title="Read a feed")
async def read(ctx: Context, params: ReadParams) -> Feed:
    """Fetch an RSS or Atom feed and return its title, link and first ``limit`` entries.

    Every entry has ``link`` and ``url`` (same value), ``summary`` (sanitized HTML) and
    ``published`` in ISO 8601 UTC. A feed declaring XML entities is refused (``invalid_response``).
    """
    response = await ctx.http.get(params.url, headers={"Accept": ACCEPT})
    raise_for_response(response)
    feed = await _parse(response)
    feed.entries = feed.entries[: params.limit]
    return feed


@connector.poll(title="New feed entry", dedupe=lambda entry: entry.id)
async def new_entries(ctx: Context, params: NewEntriesParams, cursor: FeedCursor | None) -> Poll[Entry]:
    """Entries of a feed not returned by an earlier poll.

    The first poll (no cursor) returns the feed's first ``limit`` entries and records every current
    entry as seen (the platform's baseline). Later polls return unseen entries, at most ``limit``
    (the rest stay unseen for the next polls). Conditional requests make an unchanged feed cheap.
    """
    headers = {"Accept": ACCEPT}
    if cursor is not None and cursor.etag:
        headers["If-None-Match"] = cursor.etag
    if cursor is not None and cursor.last_modified:
        headers["If-Modified-Since"] = cursor.last_modified
    response = await ctx.http.get(params.url, headers=headers)
    if response.status_code == 304 and cursor is not None:
        return Poll(items=[], cursor=cursor)
    raise_for_response(response)
    feed = await _parse(response)
    current = [digest(entry.id) for entry in feed.entries]
    if cursor is None:
        items = feed.entries[: params.limit]
        seen = set(current)
        previous: list[str] = []
    else:
        previous = cursor.seen
        known = set(previous)
        items = [entry for entry in feed.entries if digest(entry.id) not in known][: params.limit]
        seen = known | {digest(entry.id) for entry in items}
    in_feed = list(dict.fromkeys(key for key in current if key in seen))
    in_feed_set = set(in_feed)
    kept = in_feed + [key for key in previous if key not in in_feed_set]
    new_cursor = FeedCursor(
        seen=kept[: max(MAX_SEEN, len(in_feed))],
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
    )
    return Poll(items=items, cursor=new_cursor)
