"""The ``twilio`` connector against respx mocks of the Twilio REST API."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qsl

import pytest
import respx

from app.errors import StepError
from app.sdk import UpstreamError
from app.sdk.testing import check_connector, run_action
from connectors.twilio import connector as twilio
from tests.connectors.error_cases import ERROR_CASES, check_error_case

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "your_auth_token_0123456789"
LOGIN = {"kind": "basic", "username": SID, "password": TOKEN}
URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"

QUEUED = {
    "account_sid": SID,
    "api_version": "2010-04-01",
    "body": "Your order shipped!",
    "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
    "date_sent": None,
    "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
    "direction": "outbound-api",
    "error_code": None,
    "error_message": None,
    "from": "+14155552345",
    "num_media": "0",
    "num_segments": "1",
    "price": None,
    "price_unit": "USD",
    "messaging_service_sid": None,
    "sid": "SM1234567890abcdef1234567890abcdef",
    "status": "queued",
    "subresource_uris": {
        "media": f"/2010-04-01/Accounts/{SID}/Messages/SM1234567890abcdef1234567890abcdef/Media.json"
    },
    "to": "+14155552671",
    "uri": f"/2010-04-01/Accounts/{SID}/Messages/SM1234567890abcdef1234567890abcdef.json",
}


def test_standard_checks() -> None:
    assert check_connector(twilio) == []
    assert twilio.auth_kinds() == ["basic"]
    assert twilio.base_url == "https://api.twilio.com/2010-04-01"


async def test_send_sms_posts_the_form_with_basic_auth() -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(URL).respond(201, json=QUEUED)
        out = await run_action(
            twilio,
            "send_sms",
            {
                "to": "+14155552671",
                "from": "+14155552345",
                "body": "Your order shipped!",
                "media_urls": ["https://example.org/a.png", "https://example.org/b.png"],
                "status_callback": "https://hooks.example.org/twilio",
            },
            credentials=LOGIN,
        )
    sent = route.calls.last.request
    expected = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert sent.headers["authorization"] == f"Basic {expected}"
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qsl(sent.content.decode()) == [
        ("To", "+14155552671"),
        ("From", "+14155552345"),
        ("Body", "Your order shipped!"),
        ("MediaUrl", "https://example.org/a.png"),
        ("MediaUrl", "https://example.org/b.png"),
        ("StatusCallback", "https://hooks.example.org/twilio"),
    ]
    assert out == {
        "sid": "SM1234567890abcdef1234567890abcdef",
        "account_sid": SID,
        "status": "queued",
        "to": "+14155552671",
        "sender": "+14155552345",
        "messaging_service_sid": None,
        "body": "Your order shipped!",
        "num_segments": 1,
        "num_media": 0,
        "direction": "outbound-api",
        "date_created": "2023-08-24T05:01:45Z",
        "price": None,
        "price_unit": "USD",
        "error_code": None,
        "error_message": None,
        "uri": QUEUED["uri"],
    }


async def test_messaging_service_and_explicit_account_with_an_api_key() -> None:
    key_login = {"kind": "basic", "username": "SK" + "f" * 32, "password": "key-secret-value"}
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(URL).respond(
            201, json={**QUEUED, "from": None, "messaging_service_sid": "MG" + "a" * 32}
        )
        out = await run_action(
            twilio,
            "send_sms",
            {
                "to": "+447700900123",
                "messaging_service_sid": "MG" + "a" * 32,
                "body": "hi",
                "account_sid": SID,
            },
            credentials=key_login,
        )
    assert parse_qsl(route.calls.last.request.content.decode()) == [
        ("To", "+447700900123"),
        ("MessagingServiceSid", "MG" + "a" * 32),
        ("Body", "hi"),
    ]
    assert out["sender"] is None


async def test_an_api_key_login_needs_the_account_sid() -> None:
    key_login = {"kind": "basic", "username": "SK" + "f" * 32, "password": "key-secret-value"}
    with pytest.raises(StepError, match="give account_sid") as raised:
        await run_action(
            twilio,
            "send_sms",
            {"to": "+14155552671", "from": "+14155552345", "body": "x"},
            credentials=key_login,
        )
    assert raised.value.code == "invalid_params"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"to": "0612345678", "from": "+14155552345", "body": "x"}, "to"),
        ({"to": "+14155552671", "body": "x"}, "exactly one of `from`"),
        (
            {"to": "+14155552671", "from": "+1415", "messaging_service_sid": "MG" + "a" * 32, "body": "x"},
            "exactly one",
        ),
        ({"to": "+14155552671", "from": "+14155552345"}, "give a body"),
        ({"to": "+14155552671", "from": "+14155552345", "body": "x" * 1601}, "body"),
        ({"to": "+14155552671", "from": "+14155552345", "media_urls": ["http://x.org/a.png"]}, "https"),
        ({"to": "+14155552671", "from": "+14155552345", "body": "x", "account_sid": "AC12"}, "account_sid"),
    ],
)
async def test_params_are_validated(params: dict[str, Any], message: str) -> None:
    with pytest.raises(StepError, match=message) as raised:
        await run_action(twilio, "send_sms", params, credentials=LOGIN)
    assert raised.value.code == "invalid_params"


async def test_twilio_errors_are_explained() -> None:
    body = {
        "code": 21211,
        "message": "The 'To' number +15005550001 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }
    with respx.mock() as mock:
        mock.post(URL).respond(400, json=body)
        with pytest.raises(UpstreamError) as raised:
            await run_action(
                twilio,
                "send_sms",
                {"to": "+15005550001", "from": "+14155552345", "body": "x"},
                credentials=LOGIN,
            )
    assert raised.value.message.endswith(
        "answered 400 Bad Request: The 'To' number +15005550001 is not a valid phone number. "
        "(Twilio error 21211, https://www.twilio.com/docs/errors/21211)"
    )
    assert TOKEN not in str(raised.value.details)


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_send_sms_errors(case: Any) -> None:
    params = {"to": "+14155552671", "from": "+14155552345", "body": "x"}
    await check_error_case(case, twilio, "send_sms", params, "POST", URL, credentials=LOGIN)
