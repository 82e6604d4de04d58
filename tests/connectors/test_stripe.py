"""The ``stripe`` connector against respx mocks of the Stripe API."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from app.errors import StepError
from app.sdk import UpstreamError
from app.sdk.testing import check_connector, run_action, run_poll
from connectors.stripe import connector as stripe
from tests.connectors.error_cases import ERROR_CASES, check_error_case

API = "https://api.stripe.com/v1"
KEY = {"kind": "bearer", "token": "sk_test_51Mabcdefghijklmnop"}
CHARGE: dict[str, Any] = json.loads((Path(__file__).parent / "fixtures/stripe/charge.json").read_text())


def charge(n: int, created: int) -> dict[str, Any]:
    raw: dict[str, Any] = copy.deepcopy(CHARGE)
    raw.update(id=f"ch_{n:06d}", created=created, amount=100 * n)
    return raw


def customer(n: int) -> dict[str, Any]:
    return {
        "id": f"cus_{n:06d}",
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": 1_680_893_993 + n,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "email": f"user{n}@example.com",
        "invoice_prefix": "0759376C",
        "livemode": False,
        "metadata": {},
        "name": f"User {n}",
        "phone": None,
        "preferred_locales": [],
        "tax_exempt": "none",
    }


def page(items: list[dict[str, Any]], has_more: bool, url: str = "/v1/charges") -> dict[str, Any]:
    return {"object": "list", "url": url, "has_more": has_more, "data": items}


def test_standard_checks() -> None:
    assert check_connector(stripe) == []
    assert stripe.test_request == ("GET", "/balance")
    assert [op.name for op in stripe.polls()] == ["new_charge"]


async def test_list_customers_paginates_with_starting_after() -> None:
    pages = {
        None: page([customer(1), customer(2)], True, "/v1/customers"),
        "cus_000002": page([customer(3)], False, "/v1/customers"),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("starting_after")])

    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(f"{API}/customers").mock(side_effect=answer)
        out = await run_action(
            stripe,
            "list_customers",
            {"email": "a+b@example.com", "created_after": "2024-05-01T00:00:00Z", "limit": 250},
            credentials=KEY,
        )
    first, second = (call.request for call in route.calls)
    assert first.headers["authorization"] == "Bearer sk_test_51Mabcdefghijklmnop"
    assert "stripe-version" not in first.headers
    assert first.url.query.decode() == "created%5Bgte%5D=1714521600&email=a%2Bb%40example.com&limit=100"
    assert dict(second.url.params) == {
        "created[gte]": "1714521600",
        "email": "a+b@example.com",
        "limit": "100",
        "starting_after": "cus_000002",
    }
    assert [c["id"] for c in out] == ["cus_000001", "cus_000002", "cus_000003"]
    assert out[0] == {
        "id": "cus_000001",
        "email": "user1@example.com",
        "name": "User 1",
        "description": None,
        "phone": None,
        "created": "2023-04-07T18:59:54Z",
        "currency": None,
        "balance": 0,
        "delinquent": False,
        "livemode": False,
        "metadata": {},
    }


async def test_list_charges_with_version_window_and_limit() -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(f"{API}/charges").respond(
            json=page([charge(i, 1_700_000_000 - i) for i in range(3)], True)
        )
        out = await run_action(
            stripe,
            "list_charges",
            {
                "customer": "cus_NffrFeUfNV2Hib",
                "created_after": "2024-05-01T00:00:00+02:00",
                "created_before": "2024-05-02T00:00:00+02:00",
                "limit": 2,
            },
            credentials={**KEY, "stripe_version": "2024-06-20"},
        )
    sent = route.calls.last.request
    assert route.call_count == 1
    assert sent.headers["stripe-version"] == "2024-06-20"
    assert dict(sent.url.params) == {
        "created[gte]": "1714514400",
        "created[lt]": "1714600800",
        "customer": "cus_NffrFeUfNV2Hib",
        "limit": "2",
    }
    assert len(out) == 2
    assert out[0] == {
        "id": "ch_000000",
        "amount": 0,
        "amount_captured": 1099,
        "amount_refunded": 0,
        "currency": "usd",
        "status": "succeeded",
        "paid": True,
        "refunded": False,
        "created": "2023-11-14T22:13:20Z",
        "customer": "cus_NffrFeUfNV2Hib",
        "description": "Order 1234",
        "receipt_email": "jenny.rosen@example.com",
        "receipt_url": CHARGE["receipt_url"],
        "billing_name": "Jenny Rosen",
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": {"order_id": "1234"},
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"created_after": "2024-05-01T00:00:00"}, "need a zone"),
        ({"created_after": "2024-05-02T00:00:00Z", "created_before": "2024-05-01T00:00:00Z"}, "before"),
        ({"customer": "ch_123"}, "customer"),
        ({"limit": 0}, "limit"),
    ],
)
async def test_params_are_validated(params: dict[str, Any], message: str) -> None:
    with pytest.raises(StepError, match=message) as raised:
        await run_action(stripe, "list_charges", params, credentials=KEY)
    assert raised.value.code == "invalid_params"


async def test_stripe_errors_are_explained() -> None:
    body = {
        "error": {
            "code": "resource_missing",
            "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
            "message": "No such customer: 'cus_nope'",
            "param": "customer",
            "type": "invalid_request_error",
        }
    }
    with respx.mock() as mock:
        mock.get(f"{API}/charges").respond(400, json=body)
        with pytest.raises(UpstreamError) as raised:
            await run_action(stripe, "list_charges", {"customer": "cus_nope"}, credentials=KEY)
    assert raised.value.message == (
        "GET https://api.stripe.com/v1/charges answered 400 Bad Request: No such customer: 'cus_nope' "
        "(type: invalid_request_error, code: resource_missing, param: customer)"
    )


async def test_new_charge_baseline_then_new_items_oldest_first() -> None:
    with respx.mock() as mock:
        route = mock.get(f"{API}/charges").respond(
            json=page([charge(3, 1_700_000_300), charge(2, 1_700_000_200), charge(1, 1_700_000_100)], False)
        )
        baseline = await run_poll(stripe, "new_charge", {"limit": 2}, None, credentials=KEY)
        assert dict(route.calls.last.request.url.params) == {"limit": "2"}
    assert baseline.keys == ["ch_000002", "ch_000003"]
    assert baseline.cursor == 1_700_000_300

    with respx.mock() as mock:
        route = mock.get(f"{API}/charges").respond(
            json=page([charge(5, 1_700_000_500), charge(4, 1_700_000_400), charge(3, 1_700_000_300)], False)
        )
        later = await run_poll(stripe, "new_charge", {"limit": 2}, baseline.cursor, credentials=KEY)
    assert dict(route.calls.last.request.url.params) == {"created[gte]": "1700000300", "limit": "100"}
    assert later.keys == ["ch_000003", "ch_000004"]  # ch_000003 again: the platform's dedupe drops it
    assert later.cursor == 1_700_000_400
    assert [item["created"] for item in later.items] == ["2023-11-14T22:18:20Z", "2023-11-14T22:20:00Z"]

    with respx.mock() as mock:
        mock.get(f"{API}/charges").respond(json=page([], False))
        quiet = await run_poll(stripe, "new_charge", {"limit": 2}, later.cursor, credentials=KEY)
    assert quiet.items == []
    assert quiet.cursor == 1_700_000_400


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_list_charges_errors(case: Any) -> None:
    await check_error_case(case, stripe, "list_charges", {}, "GET", f"{API}/charges", credentials=KEY)


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_list_customers_errors(case: Any) -> None:
    await check_error_case(case, stripe, "list_customers", {}, "GET", f"{API}/customers", credentials=KEY)
