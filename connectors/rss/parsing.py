"""Feed bytes → :class:`Feed`: an XML guard (defusedxml), then feedparser, from bytes only.

:func:`guard_xml` refuses any document that declares XML entities or references external ones:
a *billion laughs* (nested entity expansion) or an XXE feed (``<!ENTITY x SYSTEM "file:///...">``)
fails with :class:`InvalidResponse` before feedparser sees it. A document defusedxml cannot parse
at all (a malformed feed that feedparser's lenient parser may still read) is refused as soon as it
holds an ``<!ENTITY`` declaration. A plain ``<!DOCTYPE>`` (RSS 0.91's Netscape DTD) is fine: it is
never fetched.

:func:`parse_feed` hands feedparser an ``io.BytesIO`` (never a ``str`` or ``bytes``, which
feedparser would take for a URL or a file path), with the final URL as ``Content-Location`` so
relative links resolve. feedparser sanitizes HTML in summaries and content.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeElementTree
import feedparser
from defusedxml import DefusedXmlException
from pydantic import BaseModel, ConfigDict, Field

from app.sdk import InvalidResponse

_ENTITY_DECLARATION = re.compile(rb"<!\s*ENTITY", re.IGNORECASE)
_WIDE_CODECS = ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")


class Enclosure(BaseModel):
    """A file attached to an entry (a podcast episode, an image...)."""

    model_config = ConfigDict(extra="ignore")

    url: str = Field(description="The file's URL")
    type: str | None = Field(default=None, description="Its media type")
    length: int | None = Field(default=None, description="Its size in bytes, when the feed says")


class Entry(BaseModel):
    """One entry (RSS item, Atom entry)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(description="Stable id: the guid / Atom id, else the link, else a hash of the content")
    title: str = Field(default="", description="Title (text)")
    link: str | None = Field(default=None, description="The entry's page")
    url: str | None = Field(default=None, description="Same as link (for pipelines mixing sources)")
    summary: str = Field(default="", description="Summary or content, sanitized HTML")
    published: datetime | None = Field(default=None, description="Publication time, UTC")
    updated: datetime | None = Field(default=None, description="Last update time, UTC")
    author: str | None = Field(default=None, description="Author name")
    tags: list[str] = Field(default_factory=list, description="Categories / tags")
    enclosures: list[Enclosure] = Field(default_factory=list, description="Attached files")


class Feed(BaseModel):
    """A parsed feed and its entries, in the feed's order."""

    model_config = ConfigDict(extra="ignore")

    title: str = Field(default="", description="The feed's title")
    link: str | None = Field(default=None, description="The site the feed belongs to")
    description: str = Field(default="", description="The feed's description / subtitle")
    updated: datetime | None = Field(default=None, description="When the feed last changed, UTC")
    language: str | None = Field(default=None, description="Language code, when declared")
    version: str = Field(description="Format: rss20, rss10, rss091u, atom10, atom03...")
    entries: list[Entry] = Field(description="The entries")


def _unsafe(where: str, why: str) -> InvalidResponse:
    return InvalidResponse(
        f"{where}: refused: {why}; entity declarations and external entities are not accepted in feeds "
        "(guard against entity expansion and XXE)",
        details={"reason": "xml_entities"},
    )


def _wide_variants(data: bytes) -> list[bytes]:
    """``data`` re-encoded as UTF-8 from UTF-16/32, when it looks like one of them (NUL bytes)."""
    if b"\x00" not in data[:4]:
        return []
    return [data.decode(codec, "ignore").encode("utf-8") for codec in _WIDE_CODECS]


def guard_xml(data: bytes, *, where: str = "feed") -> None:
    """Raise :class:`InvalidResponse` when ``data`` declares XML entities or external references."""
    try:
        SafeElementTree.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise _unsafe(where, f"the document declares XML entities ({type(exc).__name__})") from None
    except (ParseError, LookupError, ValueError):
        # Not well-formed XML (or an unknown encoding): feedparser's lenient parser may still
        # read it, but not with entity declarations.
        if any(_ENTITY_DECLARATION.search(text) for text in [data, *_wide_variants(data)]):
            raise _unsafe(where, "the malformed document declares XML entities") from None


def _get(data: Any, key: str) -> Any:
    """``data[key]`` without feedparser's key aliases (which warn, and map updated to published)."""
    return dict.get(data, key) if isinstance(data, dict) else None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _time(value: Any) -> datetime | None:
    """A feedparser ``*_parsed`` value (a UTC ``struct_time``) as an aware datetime."""
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, OSError, TypeError, ValueError):
        return None


def _entry_id(raw: dict[str, Any], link: str | None, summary: str) -> str:
    for candidate in (_get(raw, "id"), link):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    basis = "\n".join([_text(_get(raw, "title")), summary, _text(_get(raw, "published"))])
    return "sha256:" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]


def _length(value: Any) -> int | None:
    try:
        length = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return length if length >= 0 else None


def _entry(raw: dict[str, Any]) -> Entry:
    link = _text(_get(raw, "link")) or None
    summary = _text(_get(raw, "summary"))
    if not summary:
        contents = _get(raw, "content") or []
        if contents and isinstance(contents[0], Mapping):
            summary = _text(_get(contents[0], "value"))
    tags = [_text(_get(tag, "term")) for tag in _get(raw, "tags") or [] if isinstance(tag, Mapping)]
    enclosures = [
        Enclosure(
            url=_text(_get(ref, "href")),
            type=_text(_get(ref, "type")) or None,
            length=_length(_get(ref, "length")),
        )
        for ref in _get(raw, "links") or []
        if _get(ref, "rel") == "enclosure" and _text(_get(ref, "href"))
    ]
    return Entry(
        id=_entry_id(raw, link, summary),
        title=_text(_get(raw, "title")),
        link=link,
        url=link,
        summary=summary,
        published=_time(_get(raw, "published_parsed")) or _time(_get(raw, "updated_parsed")),
        updated=_time(_get(raw, "updated_parsed")),
        author=_text(_get(raw, "author")) or None,
        tags=[tag for tag in tags if tag],
        enclosures=enclosures,
    )


def parse_feed(data: bytes, *, url: str, content_type: str | None = None) -> Feed:
    """Parse RSS 2.0 / 1.0 / 0.9x or Atom ``data`` fetched from ``url``.

    Raises :class:`InvalidResponse` when the document is unsafe (XML entities), empty or not a feed.
    """
    where = f"feed {url}"
    if not data.strip():
        raise InvalidResponse(f"{where}: the response is empty")
    guard_xml(data, where=where)
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    try:
        result = feedparser.parse(io.BytesIO(data), response_headers=headers)
    except Exception as exc:  # feedparser tolerates most junk; anything it cannot is an unusable answer
        raise InvalidResponse(f"{where}: cannot parse the feed: {type(exc).__name__}: {exc}") from None
    entries = _get(result, "entries") or []
    version = _get(result, "version") or ""
    if not version and not entries:
        problem = _get(result, "bozo_exception")
        detail = f" ({problem})" if problem else ""
        raise InvalidResponse(f"{where}: the response is not an RSS or Atom feed{detail}")
    meta = _get(result, "feed") or {}
    return Feed(
        title=_text(_get(meta, "title")),
        link=_text(_get(meta, "link")) or None,
        description=_text(_get(meta, "subtitle")),
        updated=_time(_get(meta, "updated_parsed")),
        language=_text(_get(meta, "language")) or None,
        version=version or "unknown",
        entries=[_entry(raw) for raw in entries],
    )
