"""``openmeteo``: weather forecasts and place search from Open-Meteo (free, no key).

* ``openmeteo.forecast`` calls ``https://api.open-meteo.com/v1/forecast`` with the ``hourly``,
  ``daily`` and ``current`` variables asked for (``temperature_2m``, ``precipitation_sum``...;
  see https://open-meteo.com/en/docs), a ``timezone`` (``auto``: the place's own) and units.
  Open-Meteo answers in columns (``hourly.time[i]``, ``hourly.temperature_2m[i]``); the connector
  turns them into rows, ``hourly: [{time, temperature_2m, ...}]`` and ``daily: [{time, ...}]``,
  which pipelines can map, filter and template directly. ``current`` is one object.
* ``openmeteo.geocode`` calls ``https://geocoding-api.open-meteo.com/v1/search``: places matching a
  name, with coordinates, country, region, population and time zone.

Open-Meteo refuses bad requests with 400 and ``{"error": true, "reason": "..."}``: the reason becomes
the step error's message. The free API allows 600 calls a minute (and 10,000 a day) for
non-commercial use; the connector declares the per-minute limit.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.sdk import (
    Connector,
    Context,
    InvalidResponse,
    RateLimit,
    UpstreamError,
    decode_json,
    raise_for_response,
)

BASE_URL = "https://api.open-meteo.com/v1"
GEOCODING_URL = "https://geocoding-api.open-meteo.com/v1/search"
VARIABLE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TIMEZONE_RE = re.compile(r"^(auto|GMT|UTC|[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2})$")
MAX_VARIABLES = 40

connector = Connector(
    key="openmeteo",
    version="1.0.0",
    title="Open-Meteo",
    description="Hourly, daily and current weather forecasts for any coordinates, and place search (no key).",
    base_url=BASE_URL,
    rate_limit=RateLimit(600, per="minute"),
    docs_url="https://open-meteo.com/en/docs",
)


def _variables(values: list[str]) -> list[str]:
    names = list(dict.fromkeys(value.strip() for value in values))
    bad = [name for name in names if not VARIABLE_RE.match(name)]
    if bad:
        raise ValueError(f"weather variables are lower-case names such as temperature_2m; got {bad}")
    return names


class ForecastParams(BaseModel):
    """Where, what and in which units."""

    model_config = ConfigDict(extra="forbid")

    latitude: float = Field(ge=-90, le=90, description="Latitude in degrees (WGS84)")
    longitude: float = Field(ge=-180, le=180, description="Longitude in degrees (WGS84)")
    hourly: list[str] = Field(
        default_factory=list,
        max_length=MAX_VARIABLES,
        description="Hourly variables: temperature_2m, precipitation, wind_speed_10m, weather_code...",
    )
    daily: list[str] = Field(
        default_factory=list,
        max_length=MAX_VARIABLES,
        description="Daily variables: temperature_2m_max, temperature_2m_min, precipitation_sum, sunrise...",
    )
    current: list[str] = Field(
        default_factory=list,
        max_length=MAX_VARIABLES,
        description="Current conditions: temperature_2m, relative_humidity_2m, weather_code...",
    )
    timezone: str = Field(
        default="auto",
        max_length=64,
        description="Time zone of the times and days: auto (the place's), GMT, or a name like Europe/Paris",
    )
    forecast_days: int = Field(default=7, ge=0, le=16, description="Days of forecast, from today")
    past_days: int = Field(default=0, ge=0, le=92, description="Past days to include too")
    temperature_unit: Literal["celsius", "fahrenheit"] = Field(
        default="celsius", description="Temperature unit"
    )
    wind_speed_unit: Literal["kmh", "ms", "mph", "kn"] = Field(default="kmh", description="Wind speed unit")
    precipitation_unit: Literal["mm", "inch"] = Field(default="mm", description="Precipitation unit")

    _check_variables = field_validator("hourly", "daily", "current")(_variables)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        if not TIMEZONE_RE.match(value):
            raise ValueError("a time zone is auto, GMT, or an IANA name such as Europe/Paris")
        return value

    @model_validator(mode="after")
    def _something_asked(self) -> ForecastParams:
        if not (self.hourly or self.daily or self.current):
            raise ValueError("ask for at least one hourly, daily or current variable")
        return self


class GeocodeParams(BaseModel):
    """A place name to look up."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=2, max_length=200, description="Place name or postal code (3+ characters match fuzzily)"
    )
    count: int = Field(default=10, ge=1, le=100, description="How many places to return")
    language: str = Field(
        default="en", pattern=r"^[a-z]{2}$", description="Language of the names returned (en, fr, de...)"
    )
    country_code: str | None = Field(
        default=None, description="Only places in this country (ISO 3166-1 alpha-2 code, such as FR)"
    )

    @field_validator("country_code")
    @classmethod
    def _check_country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if not re.fullmatch(r"[A-Z]{2}", code):
            raise ValueError("a country code is two letters, such as FR")
        return code


class Forecast(BaseModel):
    """A forecast, as rows."""

    model_config = ConfigDict(extra="ignore")

    latitude: float = Field(description="Latitude of the grid cell used")
    longitude: float = Field(description="Longitude of the grid cell used")
    elevation: float | None = Field(default=None, description="Elevation used, in metres")
    timezone: str = Field(description="Time zone of the times")
    timezone_abbreviation: str | None = Field(default=None, description="Time zone abbreviation")
    utc_offset_seconds: int = Field(default=0, description="Offset of that time zone from UTC")
    current: dict[str, Any] | None = Field(
        default=None, description="Current conditions: {time, variable...}"
    )
    current_units: dict[str, str] = Field(default_factory=dict, description="Unit of each current variable")
    hourly: list[dict[str, Any]] = Field(
        default_factory=list, description="One row per hour: {time, variable...}"
    )
    hourly_units: dict[str, str] = Field(default_factory=dict, description="Unit of each hourly variable")
    daily: list[dict[str, Any]] = Field(
        default_factory=list, description="One row per day: {time, variable...}"
    )
    daily_units: dict[str, str] = Field(default_factory=dict, description="Unit of each daily variable")


class Place(BaseModel):
    """A place found by name."""

    model_config = ConfigDict(extra="ignore")

    id: int = Field(description="GeoNames id")
    name: str = Field(description="Name, in the requested language")
    latitude: float = Field(description="Latitude")
    longitude: float = Field(description="Longitude")
    elevation: float | None = Field(default=None, description="Elevation in metres")
    country: str | None = Field(default=None, description="Country name")
    country_code: str | None = Field(default=None, description="ISO 3166-1 alpha-2 country code")
    admin1: str | None = Field(default=None, description="First-level region (state, region...)")
    admin2: str | None = Field(default=None, description="Second-level region (county, department...)")
    timezone: str | None = Field(default=None, description="IANA time zone")
    population: int | None = Field(default=None, description="Population")
    feature_code: str | None = Field(default=None, description="GeoNames feature code (PPLC: capital...)")
    postcodes: list[str] = Field(default_factory=list, description="Postal codes")


def rows(block: Any, where: str) -> list[dict[str, Any]]:
    """Open-Meteo's columns ``{time: [...], var: [...]}`` as rows ``[{time, var}, ...]``."""
    if block is None:
        return []
    if not isinstance(block, dict) or not isinstance(block.get("time"), list):
        raise InvalidResponse(f"openmeteo: `{where}` is not a block of columns with a time column")
    length = len(block["time"])
    for name, column in block.items():
        if not isinstance(column, list) or len(column) != length:
            raise InvalidResponse(f"openmeteo: column `{where}.{name}` does not have {length} values")
    names = list(block)
    return [dict(zip(names, values, strict=True)) for values in zip(*block.values(), strict=True)]


async def get_json(ctx: Context, url: str, params: dict[str, Any]) -> Any:
    """GET an Open-Meteo URL; a 400 (or a 200 with ``error: true``) fails with the API's reason."""
    response = await ctx.http.get(url, params=params, headers={"Accept": "application/json"})
    if response.status_code == 400:
        _raise_reason(response)
    raise_for_response(response)
    body = decode_json(response)
    if isinstance(body, dict) and body.get("error") is True:
        raise UpstreamError(f"openmeteo: {body.get('reason') or 'the request was refused'}")
    return body


def _raise_reason(response: httpx.Response) -> None:
    try:
        body = decode_json(response)
    except InvalidResponse:
        return
    if isinstance(body, dict) and isinstance(body.get("reason"), str):
        raise UpstreamError(
            f"openmeteo refused the request: {body['reason']}",
            status_code=400,
            details={"status": 400, "reason": body["reason"]},
        )


@connector.action(title="Forecast")
async def forecast(ctx: Context, params: ForecastParams) -> Forecast:
    """The forecast for a place: ``hourly`` and ``daily`` rows and ``current`` conditions, with units."""
    query: dict[str, Any] = {
        "latitude": params.latitude,
        "longitude": params.longitude,
        "timezone": params.timezone,
        "forecast_days": params.forecast_days,
    }
    for block in ("hourly", "daily", "current"):
        names: list[str] = getattr(params, block)
        if names:
            query[block] = ",".join(names)
    if params.past_days:
        query["past_days"] = params.past_days
    for unit, default in (
        ("temperature_unit", "celsius"),
        ("wind_speed_unit", "kmh"),
        ("precipitation_unit", "mm"),
    ):
        if getattr(params, unit) != default:
            query[unit] = getattr(params, unit)
    body = await get_json(ctx, "/forecast", query)
    if not isinstance(body, dict):
        raise InvalidResponse("openmeteo: the forecast is not an object")
    current = body.get("current")
    if current is not None and not isinstance(current, dict):
        raise InvalidResponse("openmeteo: `current` is not an object")
    return Forecast.model_validate(
        {
            **{key: value for key, value in body.items() if key not in ("hourly", "daily", "current")},
            "current": current,
            "hourly": rows(body.get("hourly"), "hourly"),
            "daily": rows(body.get("daily"), "daily"),
        }
    )


@connector.action(title="Find a place")
async def geocode(ctx: Context, params: GeocodeParams) -> list[Place]:
    """Places matching a name (best matches first): coordinates, country, region, time zone."""
    query: dict[str, Any] = {
        "name": params.name,
        "count": params.count,
        "language": params.language,
        "format": "json",
    }
    if params.country_code:
        query["countryCode"] = params.country_code
    body = await get_json(ctx, GEOCODING_URL, query)
    if not isinstance(body, dict):
        raise InvalidResponse("openmeteo: the geocoding answer is not an object")
    results = body.get("results") or []
    if not isinstance(results, list):
        raise InvalidResponse("openmeteo: `results` is not a list")
    return [Place.model_validate(result) for result in results]
