"""``google_sheets``: read a range of a Google Sheets spreadsheet and append rows to it (Sheets API v4).

Auth is OAuth2 with Google (scope ``https://www.googleapis.com/auth/spreadsheets``): the platform
runs the authorization-code flow, refreshes the token and hands the connector a fresh access token,
sent as a bearer token. The API allows 60 requests per minute per user and project; the connector
declares that limit for each connection.

* ``google_sheets.read_range``: the values of an A1 range (``values/{range}``); with
  ``header_row: true`` also ``records``, one object per row keyed by the first row's cells.
* ``google_sheets.append_rows``: add rows after the table found in a range
  (``values/{range}:append`` with ``valueInputOption``: ``USER_ENTERED`` parses values as if typed
  in the sheet, ``RAW`` stores them as given).

The spreadsheet id is the long token in its URL (``/spreadsheets/d/{id}/edit``). A connection is
checked by reading a spreadsheet that cannot exist: a valid token gets 404, a refused one 401/403.
Errors (``{"error": {"code", "message", "status"}}``) are shown in the step error.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from app.sdk import (
    Connector,
    Context,
    InvalidResponse,
    OAuth2,
    RateLimit,
    decode_json,
    raise_for_response,
)

SCOPE = "https://www.googleapis.com/auth/spreadsheets"

connector = Connector(
    key="google_sheets",
    version="1.0.0",
    title="Google Sheets",
    description="Read ranges of Google Sheets spreadsheets and append rows to them.",
    base_url="https://sheets.googleapis.com/v4",
    auth=[
        OAuth2(
            authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
            token_url="https://oauth2.googleapis.com/token",
            scopes=[SCOPE],
            label="Google account",
        )
    ],
    rate_limit=RateLimit(60, per="minute"),
    test_request=("GET", "/spreadsheets/mashpipe-connection-check?fields=spreadsheetId"),
    docs_url="https://developers.google.com/sheets/api/reference/rest",
)

Cell = str | int | float | bool | None


def explain_error(body: Any) -> str | None:
    """``{"error": {"code", "message", "status"}}`` as ``message (STATUS)``."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return None
    status = error.get("status")
    return f"{error['message']} ({status})" if isinstance(status, str) else str(error["message"])


def values_path(spreadsheet_id: str, a1_range: str, suffix: str = "") -> str:
    """``/spreadsheets/{id}/values/{range}{suffix}`` with the range escaped."""
    return f"/spreadsheets/{spreadsheet_id}/values/{quote(a1_range, safe='!:')}{suffix}"


async def call(ctx: Context, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """Send a request; the typed error (with Google's message) on failure; the JSON object."""
    response = await ctx.http.request(method, path, **kwargs)
    raise_for_response(response, explain=explain_error)
    body = decode_json(response)
    if not isinstance(body, dict):
        raise InvalidResponse(f"google_sheets: {method} did not answer a JSON object")
    return body


class Spreadsheet(BaseModel):
    """Which spreadsheet and range."""

    model_config = ConfigDict(extra="forbid")

    spreadsheet_id: str = Field(
        pattern=r"^[A-Za-z0-9_-]{20,100}$",
        description="The spreadsheet id, from its URL: docs.google.com/spreadsheets/d/{id}/edit",
    )
    range: str = Field(
        min_length=1,
        max_length=500,
        pattern=r"^[^\x00-\x1f]+$",
        description="An A1 range: Sheet1!A1:D20, Sheet1!A:C, or a sheet name alone (Sheet1)",
    )


class ReadParams(Spreadsheet):
    """A range to read."""

    major_dimension: Literal["ROWS", "COLUMNS"] = Field(
        default="ROWS", description="ROWS: values[row][column]; COLUMNS: values[column][row]"
    )
    value_render_option: Literal["FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"] = Field(
        default="FORMATTED_VALUE",
        description="Values as displayed (text), as raw numbers and booleans, or as formulas",
    )
    header_row: bool = Field(
        default=False, description="Treat the first row as column names and also return `records`"
    )


class AppendParams(Spreadsheet):
    """Rows to append after the table found in the range."""

    rows: list[list[Cell]] = Field(
        min_length=1, max_length=10_000, description="The rows to add, each a list of cell values"
    )
    value_input_option: Literal["USER_ENTERED", "RAW"] = Field(
        default="USER_ENTERED",
        description="USER_ENTERED parses values as if typed (numbers, dates, =formulas); RAW keeps them",
    )
    insert_data_option: Literal["INSERT_ROWS", "OVERWRITE"] = Field(
        default="INSERT_ROWS",
        description="INSERT_ROWS inserts new rows; OVERWRITE writes over the empty cells after the table",
    )


class RangeValues(BaseModel):
    """The values of a range."""

    range: str = Field(description="The range actually read, in A1 notation")
    major_dimension: str = Field(description="ROWS or COLUMNS")
    values: list[list[Any]] = Field(description="The cells; trailing empty rows and cells are left out")
    records: list[dict[str, Any]] | None = Field(
        default=None, description="With header_row: one object per row, keyed by the header cells"
    )


class AppendResult(BaseModel):
    """What was appended where."""

    model_config = ConfigDict(extra="ignore")

    spreadsheet_id: str = Field(description="The spreadsheet id")
    table_range: str | None = Field(default=None, description="The table the rows were appended after")
    updated_range: str = Field(description="The cells written, in A1 notation")
    updated_rows: int = Field(default=0, description="How many rows were written")
    updated_columns: int = Field(default=0, description="How many columns were written")
    updated_cells: int = Field(default=0, description="How many cells were written")


def as_records(values: list[list[Any]]) -> list[dict[str, Any]]:
    """Rows keyed by the first row's cells (blank headers become ``column_N``); short rows get nulls."""
    if not values:
        return []
    header = [str(cell).strip() or f"column_{index + 1}" for index, cell in enumerate(values[0])]
    records = []
    for row in values[1:]:
        cells = list(row) + [None] * (len(header) - len(row))
        records.append(dict(zip(header, cells, strict=False)))
    return records


@connector.action(title="Read range")
async def read_range(ctx: Context, params: ReadParams) -> RangeValues:
    """The values of an A1 range; with ``header_row``, also one record per row keyed by the header."""
    raw = await call(
        ctx,
        "GET",
        values_path(params.spreadsheet_id, params.range),
        params={"majorDimension": params.major_dimension, "valueRenderOption": params.value_render_option},
    )
    values = raw.get("values") or []
    if not isinstance(values, list) or not all(isinstance(row, list) for row in values):
        raise InvalidResponse("google_sheets: `values` is not a list of rows")
    return RangeValues(
        range=str(raw.get("range") or params.range),
        major_dimension=str(raw.get("majorDimension") or params.major_dimension),
        values=values,
        records=as_records(values) if params.header_row else None,
    )


@connector.action(title="Append rows")
async def append_rows(ctx: Context, params: AppendParams) -> AppendResult:
    """Append rows after the last row of the table found in the range (new rows are inserted by default)."""
    raw = await call(
        ctx,
        "POST",
        values_path(params.spreadsheet_id, params.range, ":append"),
        params={
            "valueInputOption": params.value_input_option,
            "insertDataOption": params.insert_data_option,
        },
        json={"majorDimension": "ROWS", "values": params.rows},
    )
    updates = raw.get("updates")
    if not isinstance(updates, dict):
        raise InvalidResponse("google_sheets: the append answer has no `updates`")
    return AppendResult(
        spreadsheet_id=str(raw.get("spreadsheetId") or params.spreadsheet_id),
        table_range=raw.get("tableRange"),
        updated_range=str(updates.get("updatedRange", "")),
        updated_rows=int(updates.get("updatedRows") or 0),
        updated_columns=int(updates.get("updatedColumns") or 0),
        updated_cells=int(updates.get("updatedCells") or 0),
    )
