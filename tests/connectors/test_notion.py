"""The ``notion`` connector against respx mocks of the Notion API."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from app.errors import StepError
from app.sdk import InvalidResponse, UpstreamError
from app.sdk.testing import check_connector, run_action
from connectors.notion import connector as notion
from connectors.notion.values import plain_value
from tests.connectors.error_cases import ERROR_CASES, check_error_case

API = "https://api.notion.com/v1"
DB = "d9824bdc84454327be8b5b47500af6ce"
TOKEN = {"kind": "bearer", "token": "secret_abcdefghijklmnop"}
PAGE: dict[str, Any] = json.loads((Path(__file__).parent / "fixtures/notion/query_page.json").read_text())


def page(n: int) -> dict[str, Any]:
    raw: dict[str, Any] = copy.deepcopy(PAGE["results"][0])
    raw["id"] = f"00000000-0000-4000-8000-{n:012d}"
    return raw


def test_standard_checks() -> None:
    assert check_connector(notion) == []
    assert notion.headers == {"Notion-Version": "2022-06-28"}
    assert notion.rate_limit is not None
    assert (notion.rate_limit.requests, notion.rate_limit.per) == (3, "second")
    assert notion.test_request == ("GET", "/users/me")


async def test_query_follows_cursors_and_sends_filter_and_sorts() -> None:
    second = {"object": "list", "results": [page(2)], "next_cursor": None, "has_more": False}

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(200, json=second if "start_cursor" in body else PAGE)

    flt = {"property": "Status", "status": {"equals": "In progress"}}
    sorts = [{"property": "Due", "direction": "ascending"}]
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(f"{API}/databases/{DB}/query").mock(side_effect=answer)
        out = await run_action(
            notion, "query_database", {"database_id": DB, "filter": flt, "sorts": sorts}, credentials=TOKEN
        )
    first, following = (call.request for call in route.calls)
    assert first.headers["authorization"] == "Bearer secret_abcdefghijklmnop"
    assert first.headers["notion-version"] == "2022-06-28"
    assert json.loads(first.content) == {"page_size": 100, "filter": flt, "sorts": sorts}
    assert json.loads(following.content) == {
        "page_size": 100,
        "filter": flt,
        "sorts": sorts,
        "start_cursor": "e6c6f5ff-3cf1-4d31-bb2e-d2b0f3c0a1b2",
    }
    assert [p["id"] for p in out] == [
        "59833787-2cf9-4fdf-8782-e53db20768a5",
        "00000000-0000-4000-8000-000000000002",
    ]
    row = out[0]
    assert row["url"] == "https://www.notion.so/Fix-login-bug-598337872cf94fdf8782e53db20768a5"
    assert row["created_time"] == "2024-03-01T09:15:00Z"
    assert row["archived"] is False
    assert row["properties"]["Status"]["status"]["name"] == "In progress"
    assert row["values"] == {
        "Name": "Fix login bug",
        "Status": "In progress",
        "Tags": ["backend", "urgent"],
        "Priority": None,
        "Estimate": 3.5,
        "Done": False,
        "Due": "2024-03-05",
        "Sprint": {"start": "2024-03-04", "end": "2024-03-15"},
        "Owner": ["Ada Lovelace", "0c1d2e3f-0000-4000-8000-000000000001"],
        "Link": "https://example.org/issue/42",
        "Related": ["0f1e2d3c-4b5a-4968-8776-655443322110"],
        "Score": 7,
        "Total": ["x"],
        "Ticket": "BUG-42",
        "Attachments": ["https://example.org/log.txt"],
        "Notes": "",
        "Created": "2024-03-01T09:15:00.000Z",
    }


async def test_query_stops_at_the_limit() -> None:
    with respx.mock() as mock:
        route = mock.post(f"{API}/databases/{DB}/query").respond(
            json={"results": [page(i) for i in range(5)], "next_cursor": "c", "has_more": True}
        )
        out = await run_action(notion, "query_database", {"database_id": DB, "limit": 3}, credentials=TOKEN)
    assert len(out) == 3
    assert route.call_count == 1
    assert json.loads(route.calls.last.request.content) == {"page_size": 3}


async def test_query_refuses_a_repeated_cursor() -> None:
    with respx.mock() as mock:
        mock.post(f"{API}/databases/{DB}/query").respond(
            json={"results": [page(1)], "next_cursor": "same", "has_more": True}
        )
        with pytest.raises(InvalidResponse, match="cursor it was sent"):
            await run_action(notion, "query_database", {"database_id": DB}, credentials=TOKEN)


async def test_create_page_with_title_properties_and_paragraphs() -> None:
    created = page(9)
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(f"{API}/pages").respond(json=created)
        out = await run_action(
            notion,
            "create_page",
            {
                "database_id": DB,
                "title": "Write the report",
                "title_property": "Task",
                "properties": {"Status": {"status": {"name": "Todo"}}},
                "paragraphs": ["First line.", "Second line."],
            },
            credentials=TOKEN,
        )
    sent = route.calls.last.request
    assert sent.headers["notion-version"] == "2022-06-28"
    assert json.loads(sent.content) == {
        "parent": {"database_id": DB},
        "properties": {
            "Status": {"status": {"name": "Todo"}},
            "Task": {"title": [{"type": "text", "text": {"content": "Write the report"}}]},
        },
        "children": [
            {
                "object": "block",
                "type": "paragraph",
                "paragraph": {"rich_text": [{"type": "text", "text": {"content": "First line."}}]},
            },
            {
                "object": "block",
                "type": "paragraph",
                "paragraph": {"rich_text": [{"type": "text", "text": {"content": "Second line."}}]},
            },
        ],
    }
    assert out["id"] == "00000000-0000-4000-8000-000000000009"
    assert out["values"]["Name"] == "Fix login bug"


@pytest.mark.parametrize(
    "params",
    [
        {"database_id": DB},
        {"database_id": "not-an-id", "title": "x"},
        {"database_id": DB, "title": "x", "paragraphs": ["y" * 2001]},
    ],
)
async def test_create_params_are_validated(params: dict[str, Any]) -> None:
    with pytest.raises(StepError) as raised:
        await run_action(notion, "create_page", params, credentials=TOKEN)
    assert raised.value.code == "invalid_params"


async def test_notion_errors_are_explained() -> None:
    body = {
        "object": "error",
        "status": 400,
        "code": "validation_error",
        "message": "Status is expected to be status.",
        "request_id": "7b8c",
    }
    with respx.mock() as mock:
        mock.post(f"{API}/pages").respond(400, json=body)
        with pytest.raises(UpstreamError) as raised:
            await run_action(notion, "create_page", {"database_id": DB, "title": "x"}, credentials=TOKEN)
    assert raised.value.message.endswith(": Status is expected to be status. (validation_error)")
    assert raised.value.retry_kind is None


def test_plain_value_edge_cases() -> None:
    assert plain_value({"type": "formula", "formula": {"type": "string", "string": "hi"}}) == "hi"
    assert (
        plain_value({"type": "rollup", "rollup": {"type": "number", "number": 12, "function": "sum"}}) == 12
    )
    assert plain_value({"type": "unique_id", "unique_id": {"prefix": None, "number": 5}}) == 5
    assert plain_value({"type": "created_by", "created_by": {"object": "user", "id": "u1"}}) == "u1"
    assert plain_value({"type": "verification", "verification": {"state": "verified"}}) == {
        "state": "verified"
    }
    assert plain_value({"no": "type"}) is None


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_query_errors(case: Any) -> None:
    url = f"{API}/databases/{DB}/query"
    await check_error_case(
        case, notion, "query_database", {"database_id": DB}, "POST", url, credentials=TOKEN
    )


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_create_page_errors(case: Any) -> None:
    params = {"database_id": DB, "title": "x"}
    await check_error_case(case, notion, "create_page", params, "POST", f"{API}/pages", credentials=TOKEN)
