"""The ``frankfurter`` connector against respx mocks of the Frankfurter v2 API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import respx

from app.errors import StepError
from app.sdk import InvalidResponse, UpstreamError
from app.sdk.testing import check_connector, run_action
from connectors.frankfurter import connector as frankfurter
from tests.connectors.error_cases import ERROR_CASES, check_error_case

API = "https://api.frankfurter.dev/v2"
LATEST = [
    {"date": "2025-03-07", "base": "EUR", "quote": "USD", "rate": 1.0827},
    {"date": "2025-03-07", "base": "EUR", "quote": "GBP", "rate": 0.84},
    {"date": "2025-03-07", "base": "EUR", "quote": "JPY", "rate": 160.37},
]
SERIES = [
    {"date": "2025-03-04", "base": "USD", "quote": "EUR", "rate": 0.9491},
    {"date": "2025-03-03", "base": "USD", "quote": "EUR", "rate": 0.9588},
    {"date": "2025-03-03", "base": "USD", "quote": "CHF", "rate": 0.9012},
    {"date": "2025-03-04", "base": "USD", "quote": "CHF", "rate": 0.8893},
]


def test_standard_checks() -> None:
    assert check_connector(frankfurter) == []
    assert frankfurter.base_url == API
    assert frankfurter.auth_kinds() == ["none"]
    assert [op.name for op in frankfurter.actions()] == [
        "latest",
        "historical",
        "time_series",
        "convert",
        "currencies",
        "request",
    ]


@respx.mock
async def test_latest_all_and_some_quotes() -> None:
    route = respx.get(f"{API}/rates").respond(json=LATEST)
    out = await run_action(frankfurter, "latest", {})
    assert dict(route.calls.last.request.url.params) == {"base": "EUR"}
    assert route.calls.last.request.headers["accept"] == "application/json"
    assert out == [
        {"date": "2025-03-07", "base": "EUR", "quote": "GBP", "rate": 0.84},
        {"date": "2025-03-07", "base": "EUR", "quote": "JPY", "rate": 160.37},
        {"date": "2025-03-07", "base": "EUR", "quote": "USD", "rate": 1.0827},
    ]
    await run_action(frankfurter, "latest", {"base": "usd", "quotes": ["eur", " gbp", "EUR"]})
    assert dict(route.calls.last.request.url.params) == {"base": "USD", "quotes": "EUR,GBP"}


@respx.mock
async def test_historical() -> None:
    route = respx.get(f"{API}/rates").respond(json=[LATEST[0]])
    out = await run_action(frankfurter, "historical", {"date": "2025-03-08", "quotes": ["USD"]})
    assert dict(route.calls.last.request.url.params) == {"base": "EUR", "quotes": "USD", "date": "2025-03-08"}
    assert out == [{"date": "2025-03-07", "base": "EUR", "quote": "USD", "rate": 1.0827}]


@respx.mock
async def test_time_series_sorted_oldest_first() -> None:
    route = respx.get(f"{API}/rates").respond(json=SERIES)
    out = await run_action(
        frankfurter,
        "time_series",
        {"base": "USD", "quotes": ["EUR", "CHF"], "start": "2025-03-03", "end": "2025-03-04"},
    )
    assert dict(route.calls.last.request.url.params) == {
        "base": "USD",
        "quotes": "EUR,CHF",
        "from": "2025-03-03",
        "to": "2025-03-04",
    }
    assert [(r["date"], r["quote"], r["rate"]) for r in out] == [
        ("2025-03-03", "CHF", 0.9012),
        ("2025-03-03", "EUR", 0.9588),
        ("2025-03-04", "CHF", 0.8893),
        ("2025-03-04", "EUR", 0.9491),
    ]
    await run_action(frankfurter, "time_series", {"start": "2024-01-01", "group": "month"})
    assert dict(route.calls.last.request.url.params) == {
        "base": "EUR",
        "from": "2024-01-01",
        "group": "month",
    }


@respx.mock
async def test_time_series_over_the_last_days() -> None:
    route = respx.get(f"{API}/rates").respond(json=SERIES)
    clock = lambda: datetime(2025, 3, 9, 23, 30, tzinfo=UTC)  # noqa: E731
    await run_action(frankfurter, "time_series", {"quotes": ["USD"], "days": 7}, clock=clock)
    assert dict(route.calls.last.request.url.params) == {"base": "EUR", "quotes": "USD", "from": "2025-03-02"}


@respx.mock
async def test_convert() -> None:
    route = respx.get(f"{API}/rate/USD/JPY").respond(
        json={"date": "2025-03-07", "base": "USD", "quote": "JPY", "rate": 148.12}
    )
    out = await run_action(frankfurter, "convert", {"amount": 250, "base": "usd", "quote": "jpy"})
    assert not route.calls.last.request.url.params
    assert out == {
        "date": "2025-03-07",
        "base": "USD",
        "quote": "JPY",
        "rate": 148.12,
        "amount": 250.0,
        "converted": pytest.approx(37030.0),
    }
    await run_action(frankfurter, "convert", {"base": "USD", "quote": "JPY", "date": "2020-02-03"})
    assert dict(route.calls.last.request.url.params) == {"date": "2020-02-03"}


@respx.mock
async def test_currencies() -> None:
    body = [
        {
            "iso_code": "USD",
            "iso_numeric": "840",
            "name": "United States Dollar",
            "symbol": "$",
            "start_date": "1999-01-04",
            "end_date": "2025-03-07",
        },
        {"iso_code": "AUD", "iso_numeric": "036", "name": "Australian Dollar", "symbol": "A$"},
    ]
    route = respx.get(f"{API}/currencies").respond(json=body)
    out = await run_action(frankfurter, "currencies", {})
    assert not route.calls.last.request.url.params
    assert out == [
        {
            "code": "AUD",
            "name": "Australian Dollar",
            "symbol": "A$",
            "iso_numeric": "036",
            "start_date": None,
            "end_date": None,
        },
        {
            "code": "USD",
            "name": "United States Dollar",
            "symbol": "$",
            "iso_numeric": "840",
            "start_date": "1999-01-04",
            "end_date": "2025-03-07",
        },
    ]
    await run_action(frankfurter, "currencies", {"include_legacy": True})
    assert dict(route.calls.last.request.url.params) == {"scope": "all"}


async def test_unknown_currency_is_the_apis_message() -> None:
    with respx.mock() as mock:
        mock.get(f"{API}/rates").respond(422, json={"message": "invalid currency: XXX"})
        with pytest.raises(UpstreamError, match="invalid currency: XXX") as raised:
            await run_action(frankfurter, "latest", {"base": "XXX"})
    assert raised.value.retry_kind is None


async def test_unexpected_shapes() -> None:
    with respx.mock() as mock:
        mock.get(f"{API}/rates").respond(json={"rates": {}})
        with pytest.raises(InvalidResponse):
            await run_action(frankfurter, "latest", {})
        mock.get(f"{API}/rate/EUR/USD").respond(json={"date": "2025-03-07"})
        with pytest.raises(InvalidResponse):
            await run_action(frankfurter, "convert", {"quote": "USD"})


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("latest", {"base": "EURO"}),
        ("latest", {"base": "E1R"}),
        ("latest", {"quotes": ["US"]}),
        ("historical", {"date": "yesterday"}),
        ("time_series", {"start": "2025-03-04", "end": "2025-03-01"}),
        ("time_series", {"start": "2025-03-04", "group": "year"}),
        ("time_series", {}),
        ("time_series", {"start": "2025-03-04", "days": 3}),
        ("time_series", {"days": 3, "end": "2025-03-04"}),
        ("time_series", {"days": 0}),
        ("convert", {"quote": "USD", "amount": -1}),
        ("convert", {"base": "EUR"}),
    ],
)
async def test_invalid_params(operation: str, params: dict[str, Any]) -> None:
    with respx.mock() as mock:
        with pytest.raises(StepError) as raised:
            await run_action(frankfurter, operation, params)
        assert not mock.calls
    assert raised.value.code == "invalid_params"


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_rates_errors(case: Any) -> None:
    await check_error_case(case, frankfurter, "latest", {}, "GET", f"{API}/rates")


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_convert_errors(case: Any) -> None:
    await check_error_case(case, frankfurter, "convert", {"quote": "USD"}, "GET", f"{API}/rate/EUR/USD")
