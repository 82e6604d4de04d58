"""Quotes: an example third-party Mashpipe connector for the DummyJSON quotes API.

It lives in its own package and registers through the entry point ``quotes`` of the group
``mashpipe.connectors`` (see ``pyproject.toml``), exactly like the built-in connectors. It shows the
usual pieces: metadata, offset pagination, typed errors, opt-in HTTP caching and a polling trigger.

API: https://dummyjson.com/docs/quotes (no key; ``/quotes``, ``/quotes/{id}``, ``/quotes/random``;
lists are ``{"quotes": [...], "total": 1454, "skip": 0, "limit": 30}``).
"""

from __future__ import annotations

import contextlib

from pydantic import BaseModel, Field

from app.sdk import (
    Connector,
    Context,
    HttpCache,
    InvalidResponse,
    NoAuth,
    Offset,
    Poll,
    RateLimit,
    get_path,
)

PAGE = 100
MAX_POLL_PAGES = 10

connector = Connector(
    key="quotes",
    version="1.0.0",
    title="Quotes",
    description="Famous quotes from the DummyJSON quotes API: random, by id, lists, and new ones.",
    base_url="https://dummyjson.com",
    auth=[NoAuth()],
    rate_limit=RateLimit(100, per="minute"),
    docs_url="https://dummyjson.com/docs/quotes",
)


class Quote(BaseModel):
    """One quote."""

    id: int = Field(description="The quote's id")
    quote: str = Field(description="The quote's text")
    author: str = Field(description="Who said it")


class NoParams(BaseModel):
    """No parameters."""


class QuoteId(BaseModel):
    id: int = Field(ge=1, description="The quote's id")


class ListParams(BaseModel):
    limit: int = Field(default=30, ge=1, le=2000, description="At most this many quotes")
    author: str | None = Field(default=None, description="Only quotes by this author (exact name)")


@connector.action(title="Random quote")
async def random_quote(ctx: Context, params: NoParams) -> Quote:
    """A random quote (a new one on every call)."""
    return Quote.model_validate(await ctx.request_json("GET", "/quotes/random"))


@connector.action(title="Get a quote", cache=HttpCache(ttl=3600))
async def get_quote(ctx: Context, params: QuoteId) -> Quote:
    """One quote by its id (``not_found`` when there is none); answers are cached for an hour."""
    return Quote.model_validate(await ctx.request_json("GET", f"/quotes/{params.id}"))


@connector.action(title="List quotes")
async def list_quotes(ctx: Context, params: ListParams) -> list[Quote]:
    """Quotes in id order, page after page until ``limit`` (optionally by one author)."""
    found: list[Quote] = []
    pages = ctx.paginate("/quotes", strategy=Offset(param="skip", limit=PAGE, items_path="quotes"))
    async with contextlib.aclosing(pages):
        async for raw in pages:
            quote = Quote.model_validate(raw)
            if params.author is None or quote.author == params.author:
                found.append(quote)
                if len(found) >= params.limit:
                    break
    return found


@connector.poll(title="New quote", dedupe=lambda quote: quote.id)
async def new_quotes(ctx: Context, params: NoParams, cursor: int | None) -> Poll[Quote]:
    """Quotes added since the last poll (the cursor counts the quotes already seen).

    The first poll only records how many quotes exist today; later polls read from there on.
    """
    if cursor is None:
        head = await ctx.request_json("GET", "/quotes", params={"limit": 1, "skip": 0})
        total = head.get("total") if isinstance(head, dict) else None
        if not isinstance(total, int) or total < 0:
            raise InvalidResponse("the quotes list has no `total`")
        return Poll(items=[], cursor=total)
    found: list[Quote] = []
    skip = cursor
    for _ in range(MAX_POLL_PAGES):
        page = await ctx.request_json("GET", "/quotes", params={"limit": PAGE, "skip": skip})
        items = get_path(page, "quotes")
        if not isinstance(items, list):
            raise InvalidResponse("the quotes list has no `quotes` array")
        found.extend(Quote.model_validate(item) for item in items)
        skip += len(items)
        if len(items) < PAGE:
            break
    return Poll(items=found, cursor=skip)
