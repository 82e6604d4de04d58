"""``wikipedia``: full-text search and page summaries from any Wikipedia language edition.

* ``wikipedia.search`` calls the MediaWiki Action API (``https://{lang}.wikipedia.org/w/api.php``,
  ``action=query&list=search``), following its ``continue`` object across pages until ``limit``.
* ``wikipedia.summary`` calls the REST API (``https://{lang}.wikipedia.org/api/rest_v1/page/summary/
  {title}``): the lead paragraph as text and HTML, description, thumbnail, coordinates and page URL.
  Redirects are followed; a missing page fails with ``not_found``.

``lang`` is a Wikipedia language code (``en``, ``fr``, ``simple``, ``zh-min-nan``...): lower-case
letters with up to two hyphenated parts, so it can only ever name a subdomain of wikipedia.org.
The Action API reports errors in a 200 answer (``{"error": {"code", "info"}}``): they become step
errors too (``ratelimited`` and ``maxlag`` retryable). Requests carry the platform's descriptive
User-Agent, as Wikimedia's policy asks. The connector's base URL (used by ``wikipedia.request``) is
the English edition.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from datetime import datetime
from typing import Any

import httpx
from pydantic import AliasPath, BaseModel, ConfigDict, Field, field_validator

from app.sdk import (
    Connector,
    Context,
    InvalidResponse,
    PageRequest,
    Pagination,
    RateLimit,
    RateLimited,
    UpstreamError,
    get_path,
)

LANG_RE = re.compile(r"^[a-z]{2,12}(?:-[a-z]{2,12}){0,2}$")
TAG_RE = re.compile(r"<[^>]+>")
PAGE_SIZE = 100

connector = Connector(
    key="wikipedia",
    version="1.0.0",
    title="Wikipedia",
    description="Search Wikipedia in any language and read page summaries (MediaWiki and REST APIs).",
    base_url="https://en.wikipedia.org",
    rate_limit=RateLimit(200, per="second"),
    docs_url="https://www.mediawiki.org/wiki/API:Search",
)


def _lang(value: str) -> str:
    code = value.strip().lower()
    if not LANG_RE.match(code):
        raise ValueError("a Wikipedia language code such as en, fr, simple or zh-min-nan")
    return code


def site(lang: str) -> str:
    """The base URL of a language edition."""
    return f"https://{lang}.wikipedia.org"


def page_url(lang: str, title: str) -> str:
    """The article URL of ``title`` on a language edition."""
    return f"{site(lang)}/wiki/{urllib.parse.quote(title.replace(' ', '_'), safe='')}"


class SearchParams(BaseModel):
    """A full-text search."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=300, description="What to search for (CirrusSearch syntax)")
    lang: str = Field(default="en", description="Language edition: en, fr, de, simple...")
    limit: int = Field(default=10, ge=1, le=1000, description="How many results to return")

    _check_lang = field_validator("lang")(_lang)


class SummaryParams(BaseModel):
    """A page to summarise."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(
        min_length=1, max_length=255, description="Page title, as in the URL or with spaces (Ada Lovelace)"
    )
    lang: str = Field(default="en", description="Language edition: en, fr, de, simple...")

    _check_lang = field_validator("lang")(_lang)

    @field_validator("title")
    @classmethod
    def _clean_title(cls, value: str) -> str:
        title = value.strip()
        if not title or any(ch in title for ch in "#<>[]{}|"):
            raise ValueError("a page title cannot be empty or contain # < > [ ] { } |")
        return title


class SearchResult(BaseModel):
    """One search hit."""

    model_config = ConfigDict(extra="ignore")

    title: str = Field(description="Page title")
    pageid: int = Field(description="Page id")
    url: str = Field(description="The article's URL")
    snippet: str = Field(default="", description="Matching text, plain")
    snippet_html: str = Field(default="", description="Matching text with <span class=searchmatch> marks")
    wordcount: int | None = Field(default=None, description="Words in the page")
    size: int | None = Field(default=None, description="Page size in bytes")
    timestamp: datetime | None = Field(default=None, description="Last edit (UTC)")


class Image(BaseModel):
    """An image of a page."""

    model_config = ConfigDict(extra="ignore")

    source: str = Field(description="Image URL")
    width: int | None = Field(default=None, description="Width in pixels")
    height: int | None = Field(default=None, description="Height in pixels")


class Coordinates(BaseModel):
    """Where the page's subject is."""

    model_config = ConfigDict(extra="ignore")

    lat: float = Field(description="Latitude")
    lon: float = Field(description="Longitude")


class Summary(BaseModel):
    """A page summary (REST ``page/summary``)."""

    model_config = ConfigDict(extra="ignore")

    title: str = Field(description="Canonical title (after redirects)")
    displaytitle: str | None = Field(default=None, description="Title as displayed (HTML)")
    type: str = Field(description="standard, disambiguation, mainpage or no-extract")
    pageid: int | None = Field(default=None, description="Page id")
    lang: str | None = Field(default=None, description="Language code")
    description: str | None = Field(default=None, description="Short description (Wikidata)")
    wikibase_item: str | None = Field(default=None, description="Wikidata item id (Q...)")
    extract: str = Field(default="", description="Lead paragraph, plain text")
    extract_html: str | None = Field(default=None, description="Lead paragraph, HTML")
    url: str | None = Field(
        default=None,
        validation_alias=AliasPath("content_urls", "desktop", "page"),
        description="The article's URL",
    )
    thumbnail: Image | None = Field(default=None, description="Thumbnail image")
    original_image: Image | None = Field(
        default=None, validation_alias="originalimage", description="Full-size lead image"
    )
    coordinates: Coordinates | None = Field(default=None, description="Coordinates, for places")
    timestamp: datetime | None = Field(default=None, description="Last edit (UTC)")


def raise_for_api_error(body: Any, where: str) -> None:
    """Raise the step error of an Action API error answered with status 200."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return
    code = str(error.get("code") or "unknown")
    info = str(error.get("info") or "no details")
    message = f"{where}: the MediaWiki API refused the request: {code}: {info}"
    details = {"api_code": code, "info": info}
    if code in ("ratelimited", "maxlag"):
        raise RateLimited(message, details=details, retry_after=5.0 if code == "maxlag" else None)
    raise UpstreamError(message, details=details, code="upstream_error")


class MediaWikiContinue(Pagination):
    """The Action API's continuation: send back every field of the answer's ``continue`` object."""

    def __init__(self, items_path: str, *, max_pages: int = 20) -> None:
        super().__init__(items_path=items_path, max_pages=max_pages)

    def items(self, body: Any) -> list[Any]:
        raise_for_api_error(body, "wikipedia")
        return super().items(body)

    def next(
        self, current: PageRequest, response: httpx.Response, body: Any, items: list[Any]
    ) -> PageRequest | None:
        following = get_path(body, "continue", None)
        if not isinstance(following, dict) or not following or not items:
            return None
        params = {**current.params, **following}
        if params == current.params:
            return None  # the same continuation again: the listing would loop
        return PageRequest(current.url, params)


def _plain(snippet: str) -> str:
    return html.unescape(TAG_RE.sub("", snippet))


@connector.action(title="Search")
async def search(ctx: Context, params: SearchParams) -> list[SearchResult]:
    """Full-text search of a Wikipedia edition, best matches first, up to ``limit`` results."""
    query = {
        "action": "query",
        "list": "search",
        "srsearch": params.query,
        "srlimit": min(params.limit, PAGE_SIZE),
        "srprop": "size|wordcount|timestamp|snippet",
        "format": "json",
        "formatversion": 2,
    }
    results = []
    pages = ctx.paginate(
        f"{site(params.lang)}/w/api.php",
        strategy=MediaWikiContinue("query.search"),
        params=query,
        limit=params.limit,
    )
    async for hit in pages:
        if not isinstance(hit, dict) or not isinstance(hit.get("title"), str):
            raise InvalidResponse("wikipedia: a search result has no title")
        snippet = str(hit.get("snippet") or "")
        results.append(
            SearchResult.model_validate(
                {
                    **hit,
                    "url": page_url(params.lang, hit["title"]),
                    "snippet": _plain(snippet),
                    "snippet_html": snippet,
                }
            )
        )
    return results


@connector.action(title="Page summary")
async def summary(ctx: Context, params: SummaryParams) -> Summary:
    """The summary of a page: lead paragraph (text and HTML), description, images, coordinates, URL.

    Redirects are followed (``Paris, France`` gives ``Paris``); a missing page fails with not_found.
    """
    title = urllib.parse.quote(params.title.replace(" ", "_"), safe="")
    body = await ctx.request_json(
        "GET",
        f"{site(params.lang)}/api/rest_v1/page/summary/{title}",
        params={"redirect": "true"},
        headers={"Accept": "application/json"},
    )
    if not isinstance(body, dict):
        raise InvalidResponse(f"wikipedia: the summary of {params.title!r} is not an object")
    return Summary.model_validate(body)
