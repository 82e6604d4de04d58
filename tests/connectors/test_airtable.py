"""The ``airtable`` connector against respx mocks of the Airtable Web API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from app.errors import StepError
from app.sdk import NotFound, UpstreamError
from app.sdk.testing import check_connector, run_action
from connectors.airtable import connector as airtable
from tests.connectors.error_cases import ERROR_CASES, check_error_case

API = "https://api.airtable.com/v0"
BASE = "appAbCdEfGhIjKlMn"
TOKEN = {"kind": "bearer", "token": "patTEST.0123456789abcdef"}


def record(n: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"rec{n:014d}", "createdTime": "2024-05-01T10:00:00.000Z", "fields": fields or {"N": n}}


def test_standard_checks() -> None:
    assert check_connector(airtable) == []
    assert airtable.auth_kinds() == ["bearer"]
    assert airtable.rate_limit is not None
    assert (airtable.rate_limit.requests, airtable.rate_limit.per) == (5, "second")
    assert airtable.test_request == ("GET", "/meta/whoami")


async def test_list_records_sends_the_query_and_follows_offsets() -> None:
    pages = [
        {"records": [record(1, Name="Ada", Done=True), record(2)], "offset": "itrA/rec2"},
        {"records": [record(3)]},
    ]

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[1] if "offset" in request.url.params else pages[0])

    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(f"{API}/{BASE}/Project%20Tasks").mock(side_effect=answer)
        out = await run_action(
            airtable,
            "list_records",
            {
                "base_id": BASE,
                "table": "Project Tasks",
                "view": "Grid view",
                "filter_by_formula": "AND({Done}, {Score} > 2)",
                "fields": ["Name", "Done"],
                "sort": [{"field": "Name"}, {"field": "Score", "direction": "desc"}],
                "page_size": 2,
            },
            credentials=TOKEN,
        )
    first, second = (call.request for call in route.calls)
    assert first.headers["authorization"] == "Bearer patTEST.0123456789abcdef"
    assert first.url.params.multi_items() == [
        ("pageSize", "2"),
        ("maxRecords", "1000"),
        ("view", "Grid view"),
        ("filterByFormula", "AND({Done}, {Score} > 2)"),
        ("fields[]", "Name"),
        ("fields[]", "Done"),
        ("sort[0][field]", "Name"),
        ("sort[0][direction]", "asc"),
        ("sort[1][field]", "Score"),
        ("sort[1][direction]", "desc"),
    ]
    assert second.url.params["offset"] == "itrA/rec2"
    assert second.url.params["filterByFormula"] == "AND({Done}, {Score} > 2)"
    assert [r["id"] for r in out] == ["rec00000000000001", "rec00000000000002", "rec00000000000003"]
    assert out[0] == {
        "id": "rec00000000000001",
        "created_time": "2024-05-01T10:00:00Z",
        "fields": {"Name": "Ada", "Done": True},
    }


async def test_list_records_stops_at_max_records() -> None:
    with respx.mock() as mock:
        route = mock.get(f"{API}/{BASE}/tblAbCdEfGhIjKlMn").respond(
            json={"records": [record(i) for i in range(1, 4)], "offset": "more"}
        )
        out = await run_action(
            airtable,
            "list_records",
            {"base_id": BASE, "table": "tblAbCdEfGhIjKlMn", "max_records": 2},
            credentials=TOKEN,
        )
    assert len(out) == 2
    assert route.call_count == 1
    assert route.calls.last.request.url.params["pageSize"] == "2"


async def test_table_names_are_escaped_in_the_path() -> None:
    with respx.mock() as mock:
        route = mock.get(url__startswith=f"{API}/{BASE}/").respond(json={"records": []})
        await run_action(airtable, "list_records", {"base_id": BASE, "table": "a/b?c"}, credentials=TOKEN)
    assert route.calls.last.request.url.raw_path.startswith(f"/v0/{BASE}/a%2Fb%3Fc?".encode())


@pytest.mark.parametrize(
    "params",
    [
        {"base_id": "app123", "table": "T"},
        {"base_id": "tblAbCdEfGhIjKlMn", "table": "T"},
        {"base_id": BASE, "table": ""},
        {"base_id": BASE, "table": "T", "page_size": 101},
        {"base_id": BASE, "table": "T", "sort": [{"field": "x", "direction": "up"}]},
    ],
)
async def test_list_params_are_validated(params: dict[str, Any]) -> None:
    with pytest.raises(StepError) as raised:
        await run_action(airtable, "list_records", params, credentials=TOKEN)
    assert raised.value.code == "invalid_params"


async def test_create_records_in_batches_of_ten_in_order() -> None:
    bodies: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        start = sum(len(b["records"]) for b in bodies[:-1])
        created = [
            {"id": f"rec{start + i:014d}", "createdTime": "2024-05-02T08:30:00.000Z", "fields": r["fields"]}
            for i, r in enumerate(body["records"])
        ]
        return httpx.Response(200, json={"records": created})

    rows = [{"Name": f"row {i}", "Score": i} for i in range(23)]
    log: list[str] = []
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(f"{API}/{BASE}/Tasks").mock(side_effect=answer)
        out = await run_action(
            airtable,
            "create_records",
            {"base_id": BASE, "table": "Tasks", "records": rows, "typecast": True},
            credentials=TOKEN,
            log=log,
        )
    assert route.call_count == 3
    assert [len(b["records"]) for b in bodies] == [10, 10, 3]
    assert bodies[0]["records"][0] == {"fields": {"Name": "row 0", "Score": 0}}
    assert all(b["typecast"] is True for b in bodies)
    assert route.calls[0].request.headers["content-type"] == "application/json"
    assert [r["fields"]["Score"] for r in out] == list(range(23))
    assert out[22]["id"] == "rec00000000000022"
    assert len(log) == 3
    assert log[0].startswith("INFO created 10 records: rec00000000000000")


async def test_create_records_error_explains_and_keeps_earlier_batches_in_the_log() -> None:
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 2:
            return httpx.Response(
                422,
                json={
                    "error": {
                        "type": "INVALID_VALUE_FOR_COLUMN",
                        "message": 'Field "Score" cannot accept the provided value',
                    }
                },
            )
        records = json.loads(request.content)["records"]
        return httpx.Response(200, json={"records": [record(i) for i in range(len(records))]})

    log: list[str] = []
    with respx.mock() as mock:
        mock.post(f"{API}/{BASE}/Tasks").mock(side_effect=answer)
        with pytest.raises(UpstreamError) as raised:
            await run_action(
                airtable,
                "create_records",
                {"base_id": BASE, "table": "Tasks", "records": [{"Score": "x"}] * 15},
                credentials=TOKEN,
                log=log,
            )
    assert raised.value.message.endswith(
        'answered 422 Unprocessable Entity: Field "Score" cannot accept the provided value '
        "(INVALID_VALUE_FOR_COLUMN)"
    )
    assert len(log) == 1


async def test_create_records_with_a_short_answer_is_invalid() -> None:
    with respx.mock() as mock:
        mock.post(f"{API}/{BASE}/Tasks").respond(json={"records": [record(1)]})
        with pytest.raises(StepError, match="expected 2 created records"):
            await run_action(
                airtable,
                "create_records",
                {"base_id": BASE, "table": "Tasks", "records": [{"A": 1}, {"A": 2}]},
                credentials=TOKEN,
            )


async def test_unknown_table_is_not_found() -> None:
    with respx.mock() as mock:
        mock.get(f"{API}/{BASE}/Nope").respond(404, json={"error": "NOT_FOUND"})
        with pytest.raises(NotFound, match="NOT_FOUND"):
            await run_action(airtable, "list_records", {"base_id": BASE, "table": "Nope"}, credentials=TOKEN)


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_list_records_errors(case: Any) -> None:
    params = {"base_id": BASE, "table": "Tasks"}
    await check_error_case(
        case, airtable, "list_records", params, "GET", f"{API}/{BASE}/Tasks", credentials=TOKEN
    )


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_create_records_errors(case: Any) -> None:
    params = {"base_id": BASE, "table": "Tasks", "records": [{"A": 1}]}
    await check_error_case(
        case, airtable, "create_records", params, "POST", f"{API}/{BASE}/Tasks", credentials=TOKEN
    )
