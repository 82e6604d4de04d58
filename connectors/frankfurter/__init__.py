"""``frankfurter``: reference exchange rates from central banks, through the Frankfurter API (v2).

Frankfurter (https://frankfurter.dev) is free, open source and keyless; its public instance is
``https://api.frankfurter.dev``. The connector uses the current v2 API:

* ``frankfurter.latest``: the latest rates of ``base`` against ``quotes`` (all when empty);
* ``frankfurter.historical``: the rates on one date (the last published ones up to that date);
* ``frankfurter.time_series``: every rate between two dates (or over the last N days), optionally
  one row per week or month;
* ``frankfurter.convert``: one pair's rate and ``amount`` converted;
* ``frankfurter.currencies``: the currencies available.

Rates are rows ``{date, base, quote, rate}`` (as the API returns them), oldest date first, which
pipelines can filter, sort and group. Currency codes are ISO 4217 (``EUR``, ``usd`` is accepted).
An unknown currency fails with the API's own message (422). These are reference rates published
once or a few times a day, not market quotes.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.sdk import Connector, Context, InvalidResponse

BASE_URL = "https://api.frankfurter.dev/v2"
CODE_RE = re.compile(r"^[A-Z]{3}$")
MAX_QUOTES = 50

connector = Connector(
    key="frankfurter",
    version="1.0.0",
    title="Frankfurter exchange rates",
    description="Latest and historical reference exchange rates, time series and conversions (no key).",
    base_url=BASE_URL,
    docs_url="https://frankfurter.dev/",
)


def _code(value: str) -> str:
    code = value.strip().upper()
    if not CODE_RE.match(code):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code such as EUR or USD")
    return code


def _codes(values: list[str]) -> list[str]:
    return list(dict.fromkeys(_code(value) for value in values))


class RatesParams(BaseModel):
    """A base currency and the currencies to quote."""

    model_config = ConfigDict(extra="forbid")

    base: str = Field(default="EUR", description="Base currency (ISO 4217 code)")
    quotes: list[str] = Field(
        default_factory=list,
        max_length=MAX_QUOTES,
        description="Currencies to quote against the base (ISO 4217 codes); empty: all available",
    )

    _check_base = field_validator("base")(_code)
    _check_quotes = field_validator("quotes")(_codes)


class HistoricalParams(RatesParams):
    """Rates on one date."""

    date: dt.date = Field(
        description="The date (YYYY-MM-DD); a day without rates gives the last rates before it"
    )


class TimeSeriesParams(RatesParams):
    """Rates over a period: from ``start`` (to ``end``), or over the last ``days`` days."""

    start: dt.date | None = Field(default=None, description="First date of the period (YYYY-MM-DD)")
    end: dt.date | None = Field(default=None, description="Last date of the period (default: today)")
    days: int | None = Field(
        default=None,
        ge=1,
        le=3660,
        description="Instead of start and end: the last N days, up to today (UTC)",
    )
    group: Literal["day", "week", "month"] = Field(
        default="day", description="One row per published day, or per week or month"
    )

    @model_validator(mode="after")
    def _one_period(self) -> TimeSeriesParams:
        if (self.start is None) == (self.days is None):
            raise ValueError("give either start (and optionally end) or days")
        if self.days is not None and self.end is not None:
            raise ValueError("end goes with start, not with days")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError("end must not be before start")
        return self


class ConvertParams(BaseModel):
    """An amount to convert."""

    model_config = ConfigDict(extra="forbid")

    amount: float = Field(default=1.0, ge=0, description="Amount in the base currency")
    base: str = Field(default="EUR", description="Currency to convert from (ISO 4217 code)")
    quote: str = Field(description="Currency to convert to (ISO 4217 code)")
    date: dt.date | None = Field(default=None, description="Use the rate of this date (default: the latest)")

    _check_codes = field_validator("base", "quote")(_code)


class CurrenciesParams(BaseModel):
    """Which currencies to list."""

    model_config = ConfigDict(extra="forbid")

    include_legacy: bool = Field(
        default=False, description="Also list currencies no longer published (legacy ones)"
    )


class Rate(BaseModel):
    """One exchange rate: 1 ``base`` = ``rate`` ``quote`` on ``date``."""

    model_config = ConfigDict(extra="ignore")

    date: dt.date = Field(description="Date of the rate")
    base: str = Field(description="Base currency")
    quote: str = Field(description="Quoted currency")
    rate: float = Field(description="Units of the quoted currency for one unit of the base")


class Conversion(Rate):
    """A rate applied to an amount."""

    amount: float = Field(description="Amount in the base currency")
    converted: float = Field(description="amount times rate, in the quoted currency")


class Currency(BaseModel):
    """A currency Frankfurter knows."""

    model_config = ConfigDict(extra="ignore")

    code: str = Field(validation_alias="iso_code", description="ISO 4217 code")
    name: str = Field(description="Full name")
    symbol: str | None = Field(default=None, description="Symbol")
    iso_numeric: str | None = Field(default=None, description="ISO 4217 numeric code")
    start_date: dt.date | None = Field(default=None, description="First date with rates")
    end_date: dt.date | None = Field(default=None, description="Last date with rates")


def _query(params: RatesParams) -> dict[str, Any]:
    query: dict[str, Any] = {"base": params.base}
    if params.quotes:
        query["quotes"] = ",".join(params.quotes)
    return query


async def _rates(ctx: Context, query: dict[str, Any]) -> list[Rate]:
    body = await ctx.request_json("GET", "/rates", params=query, headers={"Accept": "application/json"})
    if not isinstance(body, list):
        raise InvalidResponse("frankfurter: /rates did not answer a list of rates")
    rates = [Rate.model_validate(row) for row in body]
    return sorted(rates, key=lambda r: (r.date, r.quote))


@connector.action(title="Latest rates")
async def latest(ctx: Context, params: RatesParams) -> list[Rate]:
    """The latest published rates of ``base`` against ``quotes`` (all currencies when empty)."""
    return await _rates(ctx, _query(params))


@connector.action(title="Historical rates")
async def historical(ctx: Context, params: HistoricalParams) -> list[Rate]:
    """The rates of ``base`` on ``date`` (the last published before it on a weekend or holiday)."""
    return await _rates(ctx, {**_query(params), "date": params.date.isoformat()})


@connector.action(title="Time series")
async def time_series(ctx: Context, params: TimeSeriesParams) -> list[Rate]:
    """Every rate of ``base`` between ``start`` and ``end`` (or over the last ``days``), oldest first.

    ``group`` thins the series out to one row per week or month.
    """
    start = params.start
    if start is None:
        start = ctx.now().date() - dt.timedelta(days=params.days or 0)
    query = {**_query(params), "from": start.isoformat()}
    if params.end is not None:
        query["to"] = params.end.isoformat()
    if params.group != "day":
        query["group"] = params.group
    return await _rates(ctx, query)


@connector.action(title="Convert")
async def convert(ctx: Context, params: ConvertParams) -> Conversion:
    """Convert ``amount`` from ``base`` to ``quote`` at the latest rate (or the rate of ``date``)."""
    query = {"date": params.date.isoformat()} if params.date is not None else None
    body = await ctx.request_json(
        "GET", f"/rate/{params.base}/{params.quote}", params=query, headers={"Accept": "application/json"}
    )
    rate = Rate.model_validate(body)
    return Conversion(**rate.model_dump(), amount=params.amount, converted=params.amount * rate.rate)


@connector.action(title="Currencies")
async def currencies(ctx: Context, params: CurrenciesParams) -> list[Currency]:
    """The currencies with rates (code, name, symbol, first and last dates), by code."""
    query = {"scope": "all"} if params.include_legacy else None
    body = await ctx.request_json("GET", "/currencies", params=query, headers={"Accept": "application/json"})
    if not isinstance(body, list):
        raise InvalidResponse("frankfurter: /currencies did not answer a list")
    return sorted((Currency.model_validate(row) for row in body), key=lambda c: c.code)
