"""The ``google_sheets`` connector against respx mocks of the Sheets API v4."""

from __future__ import annotations

import json
from typing import Any

import pytest
import respx

from app.errors import StepError
from app.sdk import AuthFailed, InvalidResponse, UpstreamError
from app.sdk.testing import check_connector, run_action
from connectors.google_sheets import connector as sheets
from tests.connectors.error_cases import ERROR_CASES, check_error_case

API = "https://sheets.googleapis.com/v4"
SHEET = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
OAUTH = {"kind": "oauth2", "access_token": "ya29.a0AfH6SMBexample"}


def test_standard_checks() -> None:
    assert check_connector(sheets) == []
    auth = sheets.describe()["auth"][0]
    assert auth["kind"] == "oauth2"
    assert auth["authorize_url"] == "https://accounts.google.com/o/oauth2/v2/auth"
    assert auth["token_url"] == "https://oauth2.googleapis.com/token"
    assert auth["scopes"] == ["https://www.googleapis.com/auth/spreadsheets"]


async def test_read_range_sends_the_token_and_options() -> None:
    body = {
        "range": "'Class Data'!A1:C4",
        "majorDimension": "ROWS",
        "values": [
            ["Name", "Grade", ""],
            ["Alexandra", "4", "Yes"],
            ["Andrew"],
            ["Anna", "1", "No", "extra"],
        ],
    }
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(url__startswith=f"{API}/spreadsheets/{SHEET}/values/").respond(json=body)
        out = await run_action(
            sheets,
            "read_range",
            {
                "spreadsheet_id": SHEET,
                "range": "'Class Data'!A1:C4",
                "value_render_option": "UNFORMATTED_VALUE",
                "header_row": True,
            },
            credentials=OAUTH,
        )
    sent = route.calls.last.request
    assert sent.headers["authorization"] == "Bearer ya29.a0AfH6SMBexample"
    assert sent.url.raw_path.decode() == (
        f"/v4/spreadsheets/{SHEET}/values/%27Class%20Data%27!A1:C4"
        "?majorDimension=ROWS&valueRenderOption=UNFORMATTED_VALUE"
    )
    assert out["range"] == "'Class Data'!A1:C4"
    assert out["major_dimension"] == "ROWS"
    assert out["values"][1] == ["Alexandra", "4", "Yes"]
    assert out["records"] == [
        {"Name": "Alexandra", "Grade": "4", "column_3": "Yes"},
        {"Name": "Andrew", "Grade": None, "column_3": None},
        {"Name": "Anna", "Grade": "1", "column_3": "No"},
    ]


async def test_read_an_empty_range() -> None:
    with respx.mock() as mock:
        mock.get(f"{API}/spreadsheets/{SHEET}/values/Sheet1").respond(
            json={"range": "Sheet1!A1:Z1000", "majorDimension": "ROWS"}
        )
        out = await run_action(
            sheets,
            "read_range",
            {"spreadsheet_id": SHEET, "range": "Sheet1", "header_row": True},
            credentials=OAUTH,
        )
    assert out == {"range": "Sheet1!A1:Z1000", "major_dimension": "ROWS", "values": [], "records": []}


async def test_append_rows() -> None:
    answer = {
        "spreadsheetId": SHEET,
        "tableRange": "Sheet1!A1:C5",
        "updates": {
            "spreadsheetId": SHEET,
            "updatedRange": "Sheet1!A6:C7",
            "updatedRows": 2,
            "updatedColumns": 3,
            "updatedCells": 6,
        },
    }
    rows = [["2024-05-01", "Daily digest", 12.5], ["2024-05-02", "=1+1", None]]
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(url__startswith=f"{API}/spreadsheets/{SHEET}/values/").respond(json=answer)
        out = await run_action(
            sheets,
            "append_rows",
            {"spreadsheet_id": SHEET, "range": "Sheet1!A:C", "rows": rows},
            credentials=OAUTH,
        )
    sent = route.calls.last.request
    assert sent.url.raw_path.decode() == (
        f"/v4/spreadsheets/{SHEET}/values/Sheet1!A:C:append?valueInputOption=USER_ENTERED&insertDataOption=INSERT_ROWS"
    )
    assert json.loads(sent.content) == {"majorDimension": "ROWS", "values": rows}
    assert out == {
        "spreadsheet_id": SHEET,
        "table_range": "Sheet1!A1:C5",
        "updated_range": "Sheet1!A6:C7",
        "updated_rows": 2,
        "updated_columns": 3,
        "updated_cells": 6,
    }


async def test_append_raw_overwrite_and_missing_updates() -> None:
    with respx.mock() as mock:
        route = mock.post(f"{API}/spreadsheets/{SHEET}/values/Log:append").respond(
            json={"spreadsheetId": SHEET}
        )
        with pytest.raises(InvalidResponse, match="no `updates`"):
            await run_action(
                sheets,
                "append_rows",
                {
                    "spreadsheet_id": SHEET,
                    "range": "Log",
                    "rows": [[1]],
                    "value_input_option": "RAW",
                    "insert_data_option": "OVERWRITE",
                },
                credentials=OAUTH,
            )
    assert dict(route.calls.last.request.url.params) == {
        "valueInputOption": "RAW",
        "insertDataOption": "OVERWRITE",
    }


@pytest.mark.parametrize(
    "params",
    [
        {"spreadsheet_id": "short", "range": "A1"},
        {"spreadsheet_id": SHEET, "range": ""},
        {"spreadsheet_id": SHEET, "range": "A1\nB2"},
        {"spreadsheet_id": SHEET + "/../x", "range": "A1"},
    ],
)
async def test_read_params_are_validated(params: dict[str, Any]) -> None:
    with pytest.raises(StepError) as raised:
        await run_action(sheets, "read_range", params, credentials=OAUTH)
    assert raised.value.code == "invalid_params"


async def test_append_needs_rows() -> None:
    with pytest.raises(StepError, match="rows"):
        await run_action(
            sheets, "append_rows", {"spreadsheet_id": SHEET, "range": "A1", "rows": []}, credentials=OAUTH
        )


async def test_google_errors_are_explained() -> None:
    body = {
        "error": {
            "code": 400,
            "message": "Unable to parse range: Nope!A1",
            "status": "INVALID_ARGUMENT",
        }
    }
    with respx.mock() as mock:
        mock.get(f"{API}/spreadsheets/{SHEET}/values/Nope!A1").respond(400, json=body)
        with pytest.raises(UpstreamError) as raised:
            await run_action(
                sheets, "read_range", {"spreadsheet_id": SHEET, "range": "Nope!A1"}, credentials=OAUTH
            )
    assert raised.value.message.endswith(
        "answered 400 Bad Request: Unable to parse range: Nope!A1 (INVALID_ARGUMENT)"
    )


async def test_expired_token_is_auth_failed() -> None:
    body = {
        "error": {
            "code": 401,
            "message": "Request had invalid authentication credentials.",
            "status": "UNAUTHENTICATED",
        }
    }
    with respx.mock() as mock:
        mock.get(f"{API}/spreadsheets/{SHEET}/values/A1").respond(401, json=body)
        with pytest.raises(AuthFailed, match="UNAUTHENTICATED"):
            await run_action(
                sheets, "read_range", {"spreadsheet_id": SHEET, "range": "A1"}, credentials=OAUTH
            )


async def test_needs_an_oauth_connection() -> None:
    with pytest.raises(StepError) as raised:
        await run_action(
            sheets, "read_range", {"spreadsheet_id": SHEET, "range": "A1"}, credentials={"token": "x"}
        )
    assert raised.value.code == "connection_invalid"


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_read_range_errors(case: Any) -> None:
    url = f"{API}/spreadsheets/{SHEET}/values/Sheet1!A1:B2"
    params = {"spreadsheet_id": SHEET, "range": "Sheet1!A1:B2"}
    await check_error_case(case, sheets, "read_range", params, "GET", url, credentials=OAUTH)


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_append_rows_errors(case: Any) -> None:
    url = f"{API}/spreadsheets/{SHEET}/values/Sheet1:append"
    params = {"spreadsheet_id": SHEET, "range": "Sheet1", "rows": [["a"]]}
    await check_error_case(case, sheets, "append_rows", params, "POST", url, credentials=OAUTH)
