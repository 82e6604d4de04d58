"""Generated connector docs: committed pages are fresh; pages show schemas in words; drift is detected."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.registry import Registry
from app.registry.docs import INDEX, MARKER, check_docs, render_all, render_page, write_docs
from app.registry.summary import fields, output_text, type_text
from app.sdk import (
    ApiKey,
    Connector,
    Context,
    HmacSha256,
    HttpCache,
    Poll,
    RateLimit,
    WebhookRequest,
)
from app.sdk.testing import settings_for_tests

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "connectors"


def builtin_connectors() -> list[Connector]:
    """The connectors shipped with Mashpipe (a third-party plugin in the environment is left out)."""
    registry = Registry.load(settings_for_tests())
    return [c for c in registry.connectors() if registry.source(c.key).startswith("distribution mashpipe ")]


def test_committed_connector_docs_are_up_to_date() -> None:
    connectors = builtin_connectors()
    assert len(connectors) >= 19
    drift = check_docs(connectors, DOCS)
    assert drift.clean, f"docs/connectors is stale ({drift.describe()}): run `mashpipe connectors docs`"


def test_every_operation_is_documented_in_its_page() -> None:
    for connector in builtin_connectors():
        page = (DOCS / f"{connector.key}.md").read_text(encoding="utf-8")
        for op in connector.operations.values():
            assert f"### `{op.uses}`: {op.title}" in page


# -- a page, in detail -----------------------------------------------------------------------------

shop = Connector(
    key="shop",
    version="2.1.0",
    title="Shop",
    description="Orders of a | shop.",
    base_url="https://api.shop.test/v1",
    auth=[ApiKey(header="X-Key")],
    rate_limit=RateLimit(10, per="minute"),
    test_request=("GET", "/me"),
    docs_url="https://shop.test/docs",
    cache=HttpCache(ttl=120),
)


class Status(BaseModel):
    code: Literal["open", "paid"] = Field(description="Order state")


class OrderQuery(BaseModel):
    customer: str = Field(min_length=1, description="Customer id")
    limit: int = Field(default=20, ge=1, le=100, description="At most\nthis many")
    statuses: list[Literal["open", "paid"]] = Field(default_factory=list, description="Only these")
    since: str | None = Field(default=None, description="ISO date")


class Order(BaseModel):
    id: int = Field(description="Order id")
    total: float
    status: Status
    tags: dict[str, str] = Field(default_factory=dict, description="Free tags")


@shop.action(title="List orders")
async def list_orders(ctx: Context, params: OrderQuery) -> list[Order]:
    """A customer's orders, newest first."""
    return []


@shop.poll(title="New order", dedupe=lambda order: order.id)
async def new_order(ctx: Context, params: OrderQuery, cursor: int | None) -> Poll[Order]:
    """Orders placed since the last poll."""
    return Poll(items=[], cursor=cursor)


@shop.webhook(title="Order event", verify=HmacSha256(header="X-Signature"))
async def order_event(ctx: Context, request: WebhookRequest) -> list[Order]:
    """One order event pushed by the shop."""
    return []


def test_page_shows_metadata_parameters_and_outputs() -> None:
    page = render_page(shop)
    assert page.startswith(MARKER + "\n\n# Shop (`shop`)\n\nOrders of a | shop.\n")
    for line in (
        "| Version | 2.1.0 |",
        "| Base URL | `https://api.shop.test/v1` |",
        "| Rate limit | 10 requests per minute, per connection |",
        "| HTTP cache | answers kept 120s |",
        "| API documentation | <https://shop.test/docs> |",
        "- API key: `api_key` (fields: `api_key`)",
        "### `shop.list_orders`: List orders",
        "| `customer` | string (length ≥ 1) | yes |   | Customer id |",
        "| `limit` | integer (≥ 1, ≤ 100) | no | `20` | At most this many |",
        '| `statuses` | list of one of "open", "paid" | no |   | Only these |',
        "| `since` | string or null | no | `null` | ISO date |",
        "**Output**: list of Order",
        "| `status` | Status |   |",
        "| `tags` | object of string | Free tags |",
        "## Polling triggers",
        "**Each item**: Order",
        "Items are deduplicated by a key the connector declares; the first poll is a baseline.",
        "## Webhooks",
        "### `shop.order_event`: Order event",
        "### `shop.request`: Raw request",
    ):
        assert line in page, line
    assert page.endswith("\n")
    assert not page.endswith("\n\n")


def test_index_links_every_page() -> None:
    pages = render_all([shop])
    assert set(pages) == {"shop.md", INDEX}
    row = (
        "| [Shop](shop.md) (`shop`) | Orders of a \\| shop. | list_orders, request | new_order, order_event |"
    )
    assert row in pages[INDEX]


def test_drift_is_detected_and_write_fixes_it(tmp_path: Path) -> None:
    directory = tmp_path / "connectors"
    assert check_docs([shop], directory).missing == ["shop.md", INDEX]
    write_docs([shop], directory)
    assert check_docs([shop], directory).clean
    (directory / "shop.md").write_text(render_page(shop).replace("2.1.0", "2.0.0"), encoding="utf-8")
    (directory / "old.md").write_text(MARKER + "\n\n# Old\n", encoding="utf-8")
    (directory / "notes.md").write_text("# Hand-written notes stay\n", encoding="utf-8")
    drift = check_docs([shop], directory)
    assert (drift.missing, drift.changed, drift.extra) == ([], ["shop.md"], ["old.md"])
    assert drift.describe() == "out of date: shop.md; extra: old.md"
    write_docs([shop], directory)
    assert check_docs([shop], directory).clean
    assert sorted(p.name for p in directory.iterdir()) == ["index.md", "notes.md", "shop.md"]


# -- schema summaries ------------------------------------------------------------------------------


def test_type_text_cases() -> None:
    defs: dict[str, Any] = {"Repo": {"type": "object", "properties": {"a": {"type": "string"}}}}
    cases: list[tuple[Any, str]] = [
        ({}, "any"),
        ({"type": "string", "format": "date-time"}, "string (date-time)"),
        ({"const": "x"}, '"x"'),
        ({"enum": list(range(10))}, "one of 0, 1, 2, 3, 4, 5, 6, 7, …"),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, "integer or null"),
        ({"type": ["string", "null"]}, "string or null"),
        ({"type": "array", "items": {"$ref": "#/$defs/Repo"}, "maxItems": 3}, "list of Repo (≤ 3 items)"),
        ({"$ref": "#/$defs/Missing"}, "any"),
        ({"type": "object"}, "object"),
        ({"allOf": [{"$ref": "#/$defs/Repo"}]}, "Repo"),
        ({"type": "string", "pattern": "^a"}, "string (matching ^a)"),
    ]
    for schema, expected in cases:
        assert type_text(schema, defs) == expected, schema


def test_fields_of_arrays_and_objects() -> None:
    schema = shop.operations["list_orders"].output_schema
    assert output_text(schema) == "list of Order"
    assert [f.name for f in fields(schema)] == ["id", "total", "status", "tags"]
    assert [f.required for f in fields(schema)] == [True, True, True, False]
    assert fields({"type": "string"}) == []
    recursive = {"$ref": "#/$defs/Node", "$defs": {"Node": {"$ref": "#/$defs/Node"}}}
    assert output_text(recursive) == "any"  # a cycle ends, it does not recurse forever
