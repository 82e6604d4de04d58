"""``notion``: query a Notion database and create pages in it (Notion API, version 2022-06-28).

Auth is an integration secret (or an OAuth access token) sent as a bearer token, with the
``Notion-Version`` header on every request. Notion allows an average of 3 requests per second per
integration; the connector declares that limit. The database must be shared with the integration.

* ``notion.query_database``: the pages of a database matching a Notion ``filter`` and ``sorts``
  (``POST /databases/{id}/query``), every page of results followed through ``start_cursor`` /
  ``next_cursor`` / ``has_more``, up to ``limit`` pages.
* ``notion.create_page``: a new page in a database, from raw Notion ``properties`` and/or a plain
  ``title``, with optional paragraphs of text as its content.

Each page comes back with its raw ``properties`` and with ``values``: the same properties as plain
JSON (text as a string, select as its name, multi-select as a list of names, date as its start...),
which is what pipelines usually want. Errors (``{"object": "error", "code", "message"}``) are shown
in the step error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.sdk import (
    BearerToken,
    Connector,
    Context,
    InvalidResponse,
    RateLimit,
    decode_json,
    raise_for_response,
)
from connectors.notion.values import plain_values

NOTION_VERSION = "2022-06-28"
MAX_PAGES = 100
ID_PATTERN = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"

connector = Connector(
    key="notion",
    version="1.0.0",
    title="Notion",
    description="Query Notion databases and create pages in them.",
    base_url="https://api.notion.com/v1",
    auth=[BearerToken(label="Integration secret")],
    rate_limit=RateLimit(3, per="second"),
    test_request=("GET", "/users/me"),
    docs_url="https://developers.notion.com/reference/intro",
    headers={"Notion-Version": NOTION_VERSION},
)


def explain_error(body: Any) -> str | None:
    """``{"object": "error", "code", "message"}`` as ``message (code)``."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return None
    code = body.get("code")
    return f"{body['message']} ({code})" if isinstance(code, str) else str(body["message"])


async def call(ctx: Context, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """Send a request; the typed error (with Notion's message) on failure; the JSON object."""
    response = await ctx.http.request(method, path, **kwargs)
    raise_for_response(response, explain=explain_error)
    body = decode_json(response)
    if not isinstance(body, dict):
        raise InvalidResponse(f"notion: {method} {path} did not answer a JSON object")
    return body


class QueryParams(BaseModel):
    """Which pages of a database to read."""

    model_config = ConfigDict(extra="forbid")

    database_id: str = Field(
        pattern=ID_PATTERN, description="The database id (32 hex digits, dashes optional, from its URL)"
    )
    filter: dict[str, Any] | None = Field(
        default=None,
        description='A Notion filter object ({"property": "Status", "status": {"equals": "Done"}})',
    )
    sorts: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=100,
        description='Notion sort objects ([{"property": "Due", "direction": "ascending"}])',
    )
    limit: int = Field(default=100, ge=1, le=10_000, description="At most this many pages")
    page_size: int = Field(default=100, ge=1, le=100, description="Pages per request (the API's max: 100)")


class CreateParams(BaseModel):
    """A page to create in a database."""

    model_config = ConfigDict(extra="forbid")

    database_id: str = Field(
        pattern=ID_PATTERN, description="The database id (32 hex digits, dashes optional)"
    )
    properties: dict[str, Any] = Field(
        default_factory=dict,
        description='Raw Notion property values ({"Status": {"status": {"name": "Todo"}}})',
    )
    title: str | None = Field(
        default=None, max_length=2000, description="Plain text for the title property (see title_property)"
    )
    title_property: str = Field(
        default="Name", min_length=1, description="The name of the database's title property"
    )
    paragraphs: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Text of the page's content, one paragraph block each (2000 characters at most)",
    )

    @model_validator(mode="after")
    def _something(self) -> CreateParams:
        if self.title is None and not self.properties:
            raise ValueError("give a title or some properties")
        if any(len(text) > 2000 for text in self.paragraphs):
            raise ValueError("a paragraph holds at most 2000 characters")
        return self

    def body(self) -> dict[str, Any]:
        """The JSON body of ``POST /pages``."""
        properties = dict(self.properties)
        if self.title is not None:
            properties[self.title_property] = {"title": [{"type": "text", "text": {"content": self.title}}]}
        body: dict[str, Any] = {"parent": {"database_id": self.database_id}, "properties": properties}
        if self.paragraphs:
            body["children"] = [
                {
                    "object": "block",
                    "type": "paragraph",
                    "paragraph": {"rich_text": [{"type": "text", "text": {"content": text}}]},
                }
                for text in self.paragraphs
            ]
        return body


class Page(BaseModel):
    """A database page (a row)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(description="Page id")
    url: str = Field(default="", description="The page's URL in Notion")
    created_time: datetime = Field(description="Creation time (UTC)")
    last_edited_time: datetime = Field(description="Last edit time (UTC)")
    archived: bool = Field(default=False, description="Whether the page is archived (in the trash)")
    values: dict[str, Any] = Field(description="Each property as plain JSON (text, number, names, dates...)")
    properties: dict[str, Any] = Field(default_factory=dict, description="The raw Notion property values")

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, data: Any) -> Any:
        if isinstance(data, dict) and "values" not in data:
            data = {**data, "values": plain_values(data.get("properties") or {})}
        return data


@connector.action(title="Query database")
async def query_database(ctx: Context, params: QueryParams) -> list[Page]:
    """Pages of a database matching a filter, in the requested order, every page of results read."""
    path = f"/databases/{params.database_id}/query"
    body: dict[str, Any] = {"page_size": min(params.page_size, params.limit)}
    if params.filter is not None:
        body["filter"] = params.filter
    if params.sorts:
        body["sorts"] = params.sorts
    pages: list[Page] = []
    for _ in range(MAX_PAGES):
        answer = await call(ctx, "POST", path, json=body)
        results = answer.get("results")
        if not isinstance(results, list):
            raise InvalidResponse("notion: the query answer has no `results` list")
        for raw in results:
            pages.append(Page.model_validate(raw))
            if len(pages) >= params.limit:
                return pages
        cursor = answer.get("next_cursor")
        if not answer.get("has_more") or not isinstance(cursor, str) or not cursor or not results:
            return pages
        if body.get("start_cursor") == cursor:
            raise InvalidResponse("notion: the API handed back the cursor it was sent")
        body["start_cursor"] = cursor
    ctx.log.warning("stopped after %s requests; later results were not read", MAX_PAGES)
    return pages


@connector.action(title="Create page")
async def create_page(ctx: Context, params: CreateParams) -> Page:
    """Create a page (a row) in a database from a plain title and/or raw properties, with optional text."""
    return Page.model_validate(await call(ctx, "POST", "/pages", json=params.body()))
