"""The ``openmeteo`` connector against respx mocks of the forecast and geocoding APIs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import respx

from app.errors import StepError
from app.sdk import InvalidResponse, UpstreamError
from app.sdk.testing import check_connector, run_action
from connectors.openmeteo import connector as openmeteo
from connectors.openmeteo import rows
from tests.connectors.error_cases import ERROR_CASES, check_error_case

FIXTURES = Path(__file__).parent / "fixtures" / "openmeteo"
FORECAST = "https://api.open-meteo.com/v1/forecast"
GEOCODING = "https://geocoding-api.open-meteo.com/v1/search"
LYON = {"latitude": 45.76, "longitude": 4.84}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_standard_checks() -> None:
    assert check_connector(openmeteo) == []
    assert openmeteo.auth_kinds() == ["none"]
    assert openmeteo.rate_limit is not None
    assert openmeteo.rate_limit.describe() == {"requests": 600, "per": "minute"}
    assert [op.name for op in openmeteo.actions()] == ["forecast", "geocode", "request"]


@respx.mock
async def test_forecast_request_and_rows() -> None:
    route = respx.get(FORECAST).respond(json=fixture("forecast_lyon.json"))
    out = await run_action(
        openmeteo,
        "forecast",
        {
            **LYON,
            "hourly": ["temperature_2m", "precipitation"],
            "daily": ["temperature_2m_max", "temperature_2m_min", "precipitation_sum"],
            "current": ["temperature_2m", "weather_code"],
            "forecast_days": 2,
        },
    )
    sent = route.calls.last.request
    assert dict(sent.url.params) == {
        "latitude": "45.76",
        "longitude": "4.84",
        "timezone": "auto",
        "forecast_days": "2",
        "hourly": "temperature_2m,precipitation",
        "daily": "temperature_2m_max,temperature_2m_min,precipitation_sum",
        "current": "temperature_2m,weather_code",
    }
    assert sent.headers["accept"] == "application/json"
    assert out["timezone"] == "Europe/Paris"
    assert out["timezone_abbreviation"] == "GMT+1"
    assert out["utc_offset_seconds"] == 3600
    assert out["elevation"] == 173.0
    assert out["current"] == {
        "time": "2025-03-09T14:15",
        "interval": 900,
        "temperature_2m": 14.2,
        "weather_code": 2,
    }
    assert out["current_units"]["temperature_2m"] == "°C"
    assert out["hourly"] == [
        {"time": "2025-03-09T00:00", "temperature_2m": 6.1, "precipitation": 0.0},
        {"time": "2025-03-09T01:00", "temperature_2m": 5.8, "precipitation": 0.2},
        {"time": "2025-03-09T02:00", "temperature_2m": None, "precipitation": 0.0},
    ]
    assert out["daily"] == [
        {
            "time": "2025-03-09",
            "temperature_2m_max": 15.3,
            "temperature_2m_min": 4.2,
            "precipitation_sum": 0.2,
        },
        {
            "time": "2025-03-10",
            "temperature_2m_max": 12.9,
            "temperature_2m_min": 6.0,
            "precipitation_sum": 5.4,
        },
    ]
    assert out["daily_units"]["precipitation_sum"] == "mm"
    assert "generationtime_ms" not in out


@respx.mock
async def test_forecast_units_past_days_and_timezone() -> None:
    body = {**fixture("forecast_lyon.json"), "hourly": None, "current": None}
    route = respx.get(FORECAST).respond(json=body)
    out = await run_action(
        openmeteo,
        "forecast",
        {
            **LYON,
            "daily": ["temperature_2m_max", "temperature_2m_max"],
            "timezone": "America/Argentina/Buenos_Aires",
            "past_days": 3,
            "temperature_unit": "fahrenheit",
            "wind_speed_unit": "kn",
            "precipitation_unit": "inch",
        },
    )
    assert dict(route.calls.last.request.url.params) == {
        "latitude": "45.76",
        "longitude": "4.84",
        "timezone": "America/Argentina/Buenos_Aires",
        "forecast_days": "7",
        "daily": "temperature_2m_max",
        "past_days": "3",
        "temperature_unit": "fahrenheit",
        "wind_speed_unit": "kn",
        "precipitation_unit": "inch",
    }
    assert out["hourly"] == []
    assert out["current"] is None
    assert len(out["daily"]) == 2


async def test_forecast_400_gives_the_apis_reason() -> None:
    reason = "Cannot initialize WeatherVariable from invalid String value tempeture_2m for key hourly"
    with respx.mock() as mock:
        mock.get(FORECAST).respond(400, json={"error": True, "reason": reason})
        with pytest.raises(UpstreamError) as raised:
            await run_action(openmeteo, "forecast", {**LYON, "hourly": ["tempeture_2m"]})
    assert raised.value.message == f"openmeteo refused the request: {reason}"
    assert raised.value.retry_kind is None
    assert raised.value.status_code == 400


async def test_forecast_columns_of_different_lengths() -> None:
    body = {
        **fixture("forecast_lyon.json"),
        "daily": {"time": ["2025-03-09"], "precipitation_sum": [1.0, 2.0]},
    }
    with respx.mock() as mock:
        mock.get(FORECAST).respond(json=body)
        with pytest.raises(InvalidResponse, match=r"daily\.precipitation_sum"):
            await run_action(openmeteo, "forecast", {**LYON, "daily": ["precipitation_sum"]})


def test_rows_helper() -> None:
    assert rows(None, "hourly") == []
    assert rows({"time": [], "x": []}, "hourly") == []
    assert rows({"time": ["a", "b"], "x": [1, 2]}, "hourly") == [{"time": "a", "x": 1}, {"time": "b", "x": 2}]
    with pytest.raises(InvalidResponse):
        rows({"x": [1]}, "hourly")


@respx.mock
async def test_geocode() -> None:
    route = respx.get(GEOCODING).respond(json=fixture("geocode_lyon.json"))
    out = await run_action(openmeteo, "geocode", {"name": "Lyon", "count": 2, "country_code": "fr"})
    assert dict(route.calls.last.request.url.params) == {
        "name": "Lyon",
        "count": "2",
        "language": "en",
        "format": "json",
        "countryCode": "FR",
    }
    assert out[0] == {
        "id": 2996944,
        "name": "Lyon",
        "latitude": 45.74846,
        "longitude": 4.84671,
        "elevation": 173.0,
        "country": "France",
        "country_code": "FR",
        "admin1": "Auvergne-Rhône-Alpes",
        "admin2": "Rhône",
        "timezone": "Europe/Paris",
        "population": 522969,
        "feature_code": "PPLA",
        "postcodes": ["69001", "69002", "69003"],
    }
    assert out[1]["admin2"] is None
    assert out[1]["postcodes"] == []


@respx.mock
async def test_geocode_nothing_found() -> None:
    respx.get(GEOCODING).respond(json={"generationtime_ms": 0.4})
    assert await run_action(openmeteo, "geocode", {"name": "Xyzzyqwv"}) == []


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("forecast", {**LYON}),
        ("forecast", {"latitude": 91, "longitude": 0, "daily": ["x"]}),
        ("forecast", {"latitude": 0, "longitude": -181, "daily": ["x"]}),
        ("forecast", {**LYON, "hourly": ["temperature_2m&apikey=x"]}),
        ("forecast", {**LYON, "daily": ["x"], "timezone": "../etc"}),
        ("forecast", {**LYON, "daily": ["x"], "forecast_days": 17}),
        ("forecast", {**LYON, "daily": ["x"], "temperature_unit": "kelvin"}),
        ("geocode", {"name": "L"}),
        ("geocode", {"name": "Lyon", "count": 101}),
        ("geocode", {"name": "Lyon", "country_code": "FRA"}),
        ("geocode", {"name": "Lyon", "language": "english"}),
    ],
)
async def test_invalid_params(operation: str, params: dict[str, Any]) -> None:
    with respx.mock() as mock:
        with pytest.raises(StepError) as raised:
            await run_action(openmeteo, operation, params)
        assert not mock.calls
    assert raised.value.code == "invalid_params"


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_forecast_errors(case: Any) -> None:
    await check_error_case(
        case, openmeteo, "forecast", {**LYON, "daily": ["precipitation_sum"]}, "GET", FORECAST
    )


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_geocode_errors(case: Any) -> None:
    await check_error_case(case, openmeteo, "geocode", {"name": "Lyon"}, "GET", GEOCODING)
