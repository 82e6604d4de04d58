"""``airtable``: list and create records of an Airtable table (Web API v0).

Auth is a personal access token (or an OAuth access token) sent as a bearer token. Airtable allows
5 requests per second per base; the connector declares that limit for each connection.

* ``airtable.list_records``: every record of a table (or of a ``view``), filtered with an Airtable
  formula (``filter_by_formula``), restricted to some ``fields``, sorted; pages of up to 100 records
  are followed through the ``offset`` the API puts in each page's body.
* ``airtable.create_records``: create any number of records, sent in batches of 10 (the API's
  maximum per request), returned in input order.

``base_id`` is the ``app...`` id in the base's URL; ``table`` is a table name or its ``tbl...`` id.
API errors (``{"error": {"type", "message"}}``) are shown in the step error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from app.sdk import (
    BearerToken,
    Connector,
    Context,
    CursorInBody,
    InvalidResponse,
    RateLimit,
    decode_json,
    raise_for_response,
)

BATCH = 10

connector = Connector(
    key="airtable",
    version="1.0.0",
    title="Airtable",
    description="List (with formulas, views, fields) and create records in Airtable tables.",
    base_url="https://api.airtable.com/v0",
    auth=[BearerToken(label="Personal access token")],
    rate_limit=RateLimit(5, per="second"),
    test_request=("GET", "/meta/whoami"),
    docs_url="https://airtable.com/developers/web/api/introduction",
)


def explain_error(body: Any) -> str | None:
    """``{"error": {"type", "message"}}`` (or ``{"error": "NOT_FOUND"}``) as one line."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return error
    if not isinstance(error, dict):
        return None
    message, kind = error.get("message"), error.get("type")
    if isinstance(message, str) and isinstance(kind, str):
        return f"{message} ({kind})"
    return message if isinstance(message, str) else kind if isinstance(kind, str) else None


class Table(BaseModel):
    """Which table."""

    model_config = ConfigDict(extra="forbid")

    base_id: str = Field(
        pattern=r"^app[A-Za-z0-9]{14}$", description="The base id (appXXXXXXXXXXXXXX, from the base's URL)"
    )
    table: str = Field(min_length=1, max_length=255, description="The table's name or id (tblXXXXXXXXXXXXXX)")

    @property
    def path(self) -> str:
        """``/{base}/{table}`` with the table name escaped."""
        return f"/{self.base_id}/{quote(self.table, safe='')}"


class SortBy(BaseModel):
    """One sort key."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(min_length=1, description="Field name")
    direction: Literal["asc", "desc"] = Field(default="asc", description="asc or desc")


class ListParams(Table):
    """Which records to read."""

    view: str | None = Field(
        default=None, min_length=1, description="A view's name or id: its filters and order apply"
    )
    filter_by_formula: str | None = Field(
        default=None,
        min_length=1,
        max_length=10_000,
        description="An Airtable formula; records for which it is truthy are kept ({Status} = 'Done')",
    )
    fields: list[str] = Field(
        default_factory=list, max_length=500, description="Only these fields (default: all of them)"
    )
    sort: list[SortBy] = Field(default_factory=list, max_length=20, description="Sort keys, first one first")
    max_records: int = Field(default=1000, ge=1, le=100_000, description="At most this many records")
    page_size: int = Field(default=100, ge=1, le=100, description="Records per request (the API's max: 100)")

    def query(self) -> dict[str, Any]:
        """The query string of ``GET /{base}/{table}``."""
        query: dict[str, Any] = {
            "pageSize": min(self.page_size, self.max_records),
            "maxRecords": self.max_records,
        }
        if self.view is not None:
            query["view"] = self.view
        if self.filter_by_formula is not None:
            query["filterByFormula"] = self.filter_by_formula
        if self.fields:
            query["fields[]"] = self.fields
        for index, key in enumerate(self.sort):
            query[f"sort[{index}][field]"] = key.field
            query[f"sort[{index}][direction]"] = key.direction
        return query


class CreateParams(Table):
    """Records to create."""

    records: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=10_000,
        description='The fields of each record to create ({"Name": "Ada", "Score": 3}); sent 10 at a time',
    )
    typecast: bool = Field(
        default=False,
        description="Let Airtable convert values (text to select options, dates...) instead of refusing them",
    )


class Record(BaseModel):
    """A record: its id, creation time and fields."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(description="Record id (rec...)")
    created_time: datetime = Field(alias="createdTime", description="When the record was created (UTC)")
    fields: dict[str, Any] = Field(
        default_factory=dict, description="Field values by name (empty fields are left out by Airtable)"
    )


@connector.action(title="List records")
async def list_records(ctx: Context, params: ListParams) -> list[Record]:
    """Records of a table, filtered by a formula and a view, with only the chosen fields, every page read."""
    strategy = CursorInBody(cursor_path="offset", param="offset", items_path="records", max_pages=1000)
    return [
        Record.model_validate(raw)
        async for raw in ctx.paginate(
            params.path, strategy=strategy, params=params.query(), limit=params.max_records
        )
    ]


@connector.action(title="Create records")
async def create_records(ctx: Context, params: CreateParams) -> list[Record]:
    """Create records, 10 per request (Airtable's maximum); the created records come back in input order.

    A failing batch fails the step; the batches before it stay created (their ids are in the log).
    """
    created: list[Record] = []
    for start in range(0, len(params.records), BATCH):
        batch = params.records[start : start + BATCH]
        body = {"records": [{"fields": fields} for fields in batch], "typecast": params.typecast}
        response = await ctx.http.request("POST", params.path, json=body)
        raise_for_response(response, explain=explain_error)
        answer = decode_json(response)
        records = answer.get("records") if isinstance(answer, dict) else None
        if not isinstance(records, list) or len(records) != len(batch):
            raise InvalidResponse(f"airtable: expected {len(batch)} created records in the answer")
        created.extend(Record.model_validate(raw) for raw in records)
        ctx.log.info("created %s records: %s", len(records), ", ".join(r.id for r in created[-len(batch) :]))
    return created
