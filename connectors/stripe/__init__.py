"""``stripe``: list customers and charges of a Stripe account, and fire on new charges.

Auth is the secret key (``sk_live_...``, ``sk_test_...`` or a restricted ``rk_...`` key) as a bearer
token. A connection may pin an API version with ``stripe_version`` (sent as ``Stripe-Version``);
without it the account's default version applies. Stripe allows 100 read requests per second in
live mode; the connector declares that limit.

* ``stripe.list_customers``: customers, newest first, optionally by ``email`` and creation time.
* ``stripe.list_charges``: charges, newest first, optionally of one ``customer`` and by creation
  time (``created_after`` / ``created_before``, for a daily report).
* poll ``stripe.new_charge``: charges created since the last poll.

List parameters go in the query string, form-encoded the Stripe way (``created[gte]=1714521600``);
pages of up to 100 objects are followed with ``starting_after`` (the last id of a page) while the
answer says ``has_more``. Errors (``{"error": {"type", "code", "message"}}``) are shown in the step
error. Amounts are integers in the currency's smallest unit (cents), as Stripe gives them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from pydantic import AliasPath, BaseModel, ConfigDict, Field, model_validator

from app.sdk import (
    BearerToken,
    Connector,
    Context,
    CredentialField,
    Pagination,
    Poll,
    RateLimit,
    decode_json,
    raise_for_response,
)
from app.sdk.pagination import PageRequest

connector = Connector(
    key="stripe",
    version="1.0.0",
    title="Stripe",
    description="List Stripe customers and charges, and fire on new charges.",
    base_url="https://api.stripe.com/v1",
    auth=[
        BearerToken(
            label="Secret key",
            extra_fields=[
                CredentialField(
                    "stripe_version",
                    "API version to pin (Stripe-Version header, such as 2024-06-20); optional",
                    secret=False,
                    required=False,
                )
            ],
        )
    ],
    rate_limit=RateLimit(100, per="second"),
    test_request=("GET", "/balance"),
    docs_url="https://docs.stripe.com/api",
)


MAX_CATCH_UP = 10_000


def explain_error(body: Any) -> str | None:
    """``{"error": {"type", "code", "message", "param"}}`` as ``message (type: ..., code: ...)``."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    message = error.get("message")
    tags = [f"{key}: {error[key]}" for key in ("type", "code", "param") if isinstance(error.get(key), str)]
    if not isinstance(message, str):
        return ", ".join(tags) or None
    return f"{message} ({', '.join(tags)})" if tags else message


class StartingAfter(Pagination):
    """Stripe lists: items in ``data``; the next page starts after the last id while ``has_more``."""

    def __init__(self, *, max_pages: int = 1000) -> None:
        super().__init__(items_path="data", max_pages=max_pages)

    def next(
        self, current: PageRequest, response: httpx.Response, body: Any, items: list[Any]
    ) -> PageRequest | None:
        if not (isinstance(body, dict) and body.get("has_more")) or not items:
            return None
        last = items[-1].get("id") if isinstance(items[-1], dict) else None
        if not isinstance(last, str) or current.params.get("starting_after") == last:
            return None
        return PageRequest(current.url, {**current.params, "starting_after": last})


def version_header(ctx: Context) -> dict[str, str] | None:
    """``Stripe-Version`` when the connection pins one."""
    version = ctx.credentials.get("stripe_version")
    return {"Stripe-Version": version.strip()} if isinstance(version, str) and version.strip() else None


async def stripe_list(ctx: Context, path: str, query: dict[str, Any], limit: int) -> list[Any]:
    """Every object of a Stripe list, up to ``limit`` (errors explained the Stripe way)."""
    strategy = StartingAfter()
    page = strategy.first(path, {**query, "limit": min(100, limit)})
    found: list[Any] = []
    for _ in range(strategy.max_pages):
        response = await ctx.http.request("GET", page.url, params=page.params, headers=version_header(ctx))
        raise_for_response(response, explain=explain_error)
        body = decode_json(response)
        items = strategy.items(body)
        found.extend(items[: limit - len(found)])
        following = strategy.next(page, response, body, items)
        if len(found) >= limit or following is None:
            return found
        page = following
    ctx.log.warning("stopped after %s pages of %s; later pages were not read", strategy.max_pages, path)
    return found


def created_filter(after: datetime | None, before: datetime | None) -> dict[str, int]:
    """``created[gte]`` / ``created[lt]`` as Unix times."""
    query: dict[str, int] = {}
    if after is not None:
        query["created[gte]"] = int(after.timestamp())
    if before is not None:
        query["created[lt]"] = int(before.timestamp())
    return query


class Window(BaseModel):
    """Creation time bounds and a maximum count."""

    model_config = ConfigDict(extra="forbid")

    created_after: datetime | None = Field(
        default=None, description="Only objects created at or after this time (ISO 8601, with a zone)"
    )
    created_before: datetime | None = Field(
        default=None, description="Only objects created before this time (ISO 8601, with a zone)"
    )
    limit: int = Field(default=100, ge=1, le=10_000, description="At most this many objects, newest first")

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        for moment in (self.created_after, self.created_before):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("times need a zone (2024-05-01T00:00:00Z)")
        if self.created_after and self.created_before and self.created_after >= self.created_before:
            raise ValueError("created_after must be before created_before")
        return self


class CustomersParams(Window):
    """Which customers."""

    email: str | None = Field(
        default=None, min_length=3, max_length=512, description="Only customers with this exact email"
    )


class ChargesParams(Window):
    """Which charges."""

    customer: str | None = Field(
        default=None, pattern=r"^cus_[A-Za-z0-9]+$", description="Only the charges of this customer (cus_...)"
    )


class NewChargeParams(BaseModel):
    """Which new charges."""

    model_config = ConfigDict(extra="forbid")

    customer: str | None = Field(
        default=None, pattern=r"^cus_[A-Za-z0-9]+$", description="Only the charges of this customer (cus_...)"
    )
    limit: int = Field(default=100, ge=1, le=1000, description="At most this many charges per poll")


class Customer(BaseModel):
    """A customer."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(description="Customer id (cus_...)")
    email: str | None = Field(default=None, description="Email address")
    name: str | None = Field(default=None, description="Full name or business name")
    description: str | None = Field(default=None, description="Free-text description")
    phone: str | None = Field(default=None, description="Phone number")
    created: datetime = Field(description="Creation time (UTC)")
    currency: str | None = Field(default=None, description="Default currency (ISO code, lower case)")
    balance: int = Field(default=0, description="Balance in the smallest currency unit (negative: credit)")
    delinquent: bool | None = Field(default=None, description="Whether the latest invoice failed")
    livemode: bool = Field(default=False, description="Live (true) or test mode")
    metadata: dict[str, str] = Field(default_factory=dict, description="Your key-value metadata")


class Charge(BaseModel):
    """A charge."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(description="Charge id (ch_... or py_...)")
    amount: int = Field(description="Amount in the smallest currency unit (cents)")
    amount_captured: int = Field(default=0, description="Amount captured (smallest unit)")
    amount_refunded: int = Field(default=0, description="Amount refunded (smallest unit)")
    currency: str = Field(description="Currency (ISO code, lower case)")
    status: str = Field(description="succeeded, pending or failed")
    paid: bool = Field(default=False, description="Whether the charge succeeded")
    refunded: bool = Field(default=False, description="Whether it was fully refunded")
    created: datetime = Field(description="Creation time (UTC)")
    customer: str | None = Field(default=None, description="Customer id, if any")
    description: str | None = Field(default=None, description="Description")
    receipt_email: str | None = Field(default=None, description="Where the receipt was sent")
    receipt_url: str | None = Field(default=None, description="The receipt's page")
    billing_name: str | None = Field(
        default=None,
        validation_alias=AliasPath("billing_details", "name"),
        description="Name on the payment method's billing details",
    )
    failure_code: str | None = Field(default=None, description="Why it failed (code)")
    failure_message: str | None = Field(default=None, description="Why it failed (text)")
    livemode: bool = Field(default=False, description="Live (true) or test mode")
    metadata: dict[str, str] = Field(default_factory=dict, description="Your key-value metadata")


@connector.action(title="List customers")
async def list_customers(ctx: Context, params: CustomersParams) -> list[Customer]:
    """Customers, newest first, optionally by exact email and creation time."""
    query: dict[str, Any] = created_filter(params.created_after, params.created_before)
    if params.email is not None:
        query["email"] = params.email
    raws = await stripe_list(ctx, "/customers", query, params.limit)
    return [Customer.model_validate(raw) for raw in raws]


@connector.action(title="List charges")
async def list_charges(ctx: Context, params: ChargesParams) -> list[Charge]:
    """Charges, newest first, optionally of one customer and by creation time."""
    query: dict[str, Any] = created_filter(params.created_after, params.created_before)
    if params.customer is not None:
        query["customer"] = params.customer
    raws = await stripe_list(ctx, "/charges", query, params.limit)
    return [Charge.model_validate(raw) for raw in raws]


@connector.poll(title="New charge", dedupe=lambda charge: charge.id)
async def new_charge(ctx: Context, params: NewChargeParams, cursor: int | None) -> Poll[Charge]:
    """Charges created since the last poll, oldest first, at most ``limit`` per poll.

    The cursor is the creation time (Unix seconds) of the newest charge handed out. The first poll
    returns the latest ``limit`` charges so the platform can record a baseline. Later polls read the
    charges created at or after the cursor (that second again, so none is missed; the platform's
    dedupe by charge id drops the repeats) and hand out the oldest ``limit`` of them; a larger burst
    is caught up over the next polls.
    """
    query: dict[str, Any] = {}
    if params.customer is not None:
        query["customer"] = params.customer
    if cursor is not None:
        query["created[gte]"] = cursor
    raws = await stripe_list(ctx, "/charges", query, params.limit if cursor is None else MAX_CATCH_UP)
    charges = sorted((Charge.model_validate(raw) for raw in raws), key=lambda charge: charge.created)
    chosen = charges[-params.limit :] if cursor is None else charges[: params.limit]
    newest = int(chosen[-1].created.timestamp()) if chosen else cursor
    return Poll(items=chosen, cursor=newest)
