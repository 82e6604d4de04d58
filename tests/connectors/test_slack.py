"""The ``slack`` connector: chat.postMessage (200 + ok:false errors) and incoming webhooks, with respx."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import respx

from app.errors import StepError
from app.sdk import AuthFailed, InvalidResponse, NotFound, RateLimited, UpstreamError
from app.sdk.testing import check_connector, run_action
from connectors.slack import connector as slack
from tests.connectors.error_cases import ERROR_CASES, ErrorCase, check_error_case

POST_URL = "https://slack.com/api/chat.postMessage"
BOT = {"kind": "bearer", "token": "xoxb-1234-5678-abcdefghijkl"}
HOOK_URL = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
HOOK = {"kind": "webhook_url", "webhook_url": HOOK_URL}

# The shape of chat.postMessage's documented success answer
POSTED = {
    "ok": True,
    "channel": "C123ABC456",
    "ts": "1503435956.000247",
    "message": {
        "text": "Here's a message for you",
        "username": "ecto1",
        "bot_id": "B123ABC456",
        "type": "message",
        "subtype": "bot_message",
        "ts": "1503435956.000247",
    },
}


def test_standard_checks() -> None:
    assert check_connector(slack) == []
    assert slack.auth_kinds() == ["bearer", "webhook_url"]
    assert slack.test_request == ("POST", "/auth.test")
    assert [op.name for op in slack.actions()] == ["post_message", "send_webhook_message", "request"]


@respx.mock
async def test_post_message() -> None:
    route = respx.post(POST_URL).respond(json=POSTED)
    out = await run_action(
        slack,
        "post_message",
        {
            "channel": "C123ABC456",
            "text": "Here's a message for you",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Hi*"}}],
            "thread_ts": "1503435956.000100",
            "reply_broadcast": True,
            "icon_emoji": ":robot_face:",
        },
        credentials=BOT,
    )
    assert out == {
        "channel": "C123ABC456",
        "ts": "1503435956.000247",
        "text": "Here's a message for you",
        "thread_ts": None,
    }
    sent = route.calls.last.request
    assert sent.headers["Authorization"] == f"Bearer {BOT['token']}"
    assert sent.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(sent.content) == {
        "channel": "C123ABC456",
        "text": "Here's a message for you",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Hi*"}}],
        "mrkdwn": True,
        "unfurl_links": False,
        "unfurl_media": True,
        "thread_ts": "1503435956.000100",
        "reply_broadcast": True,
        "icon_emoji": ":robot_face:",
    }


@respx.mock
async def test_post_message_logs_slack_warnings() -> None:
    respx.post(POST_URL).respond(json={**POSTED, "warning": "missing_charset"})
    log: list[str] = []
    await run_action(slack, "post_message", {"channel": "#general", "text": "hi"}, credentials=BOT, log=log)
    assert log == ["WARNING Slack chat.postMessage warning: missing_charset"]


@pytest.mark.parametrize(
    ("error", "expected", "retry_kind", "fragment"),
    [
        ("not_authed", AuthFailed, None, "not_authed"),
        ("invalid_auth", AuthFailed, None, "invalid_auth"),
        ("missing_scope", AuthFailed, None, "chat:write"),
        ("ratelimited", RateLimited, "http_429", "ratelimited"),
        ("channel_not_found", NotFound, None, "channel ID"),
        ("internal_error", UpstreamError, "http_5xx", "internal_error"),
        ("not_in_channel", UpstreamError, None, "invite the bot"),
        ("some_future_error", UpstreamError, None, "some_future_error"),
    ],
)
@respx.mock
async def test_ok_false_answers_are_typed(
    error: str, expected: type[StepError], retry_kind: str | None, fragment: str
) -> None:
    respx.post(POST_URL).respond(
        json={"ok": False, "error": error, "response_metadata": {"messages": ["[ERROR] more"]}},
        headers={"Retry-After": "30"} if error == "ratelimited" else {},
    )
    with pytest.raises(expected) as caught:
        await run_action(slack, "post_message", {"channel": "C1", "text": "hi"}, credentials=BOT)
    raised = caught.value
    assert type(raised) is expected
    assert raised.retry_kind == retry_kind
    assert raised.message.startswith(f"Slack chat.postMessage failed: {error}")
    assert fragment in raised.message
    assert raised.details["error"] == error
    assert raised.details["messages"] == ["[ERROR] more"]
    if expected is RateLimited:
        assert raised.retry_after == 30.0


@respx.mock
async def test_answer_without_ok_is_invalid() -> None:
    respx.post(POST_URL).respond(json={"channel": "C1"})
    with pytest.raises(InvalidResponse, match="without an `ok` field"):
        await run_action(slack, "post_message", {"channel": "C1", "text": "hi"}, credentials=BOT)


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_post_message_error_cases(case: ErrorCase) -> None:
    await check_error_case(
        case, slack, "post_message", {"channel": "C1", "text": "hi"}, "POST", POST_URL, credentials=BOT
    )


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"channel": "C1"}, "give `text` or `blocks`"),
        ({"channel": "C1", "text": "   "}, "give `text` or `blocks`"),
        ({"channel": "", "text": "x"}, "channel"),
        ({"channel": "C1", "text": "x", "thread_ts": "yesterday"}, "thread_ts"),
        ({"channel": "C1", "text": "x" * 40001}, "text"),
        ({"channel": "C1", "text": "x", "colour": "red"}, "colour"),
    ],
)
async def test_post_message_params_are_checked(params: dict[str, Any], problem: str) -> None:
    with pytest.raises(StepError) as caught:
        await run_action(slack, "post_message", params, credentials=BOT)
    assert caught.value.code == "invalid_params"
    assert problem in caught.value.message


async def test_each_operation_needs_its_kind_of_connection() -> None:
    with pytest.raises(StepError, match="must be a bot token") as caught:
        await run_action(slack, "post_message", {"channel": "C1", "text": "hi"}, credentials=HOOK)
    assert caught.value.code == "connection_invalid"
    with pytest.raises(StepError, match="needs an incoming webhook connection"):
        await run_action(slack, "send_webhook_message", {"text": "hi"}, credentials=BOT)
    with pytest.raises(StepError, match="needs a connection"):
        await run_action(slack, "send_webhook_message", {"text": "hi"})


@respx.mock
async def test_send_webhook_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    route = respx.post(HOOK_URL).respond(200, text="ok", headers={"Content-Type": "text/html"})
    out = await run_action(
        slack, "send_webhook_message", {"text": "Deploy *done*", "unfurl_links": True}, credentials=HOOK
    )
    assert out == {"ok": True}
    sent = route.calls.last.request
    assert "authorization" not in sent.headers
    assert json.loads(sent.content) == {
        "text": "Deploy *done*",
        "mrkdwn": True,
        "unfurl_links": True,
        "unfurl_media": True,
    }
    assert HOOK_URL not in caplog.text
    assert "XXXXXXXX" not in caplog.text


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (400, "invalid_payload", UpstreamError),
        (403, "action_prohibited", AuthFailed),
        (404, "no_service", NotFound),
        (410, "channel_is_archived", UpstreamError),
    ],
)
@respx.mock
async def test_webhook_refusals_name_slack_reason_not_the_url(
    status: int, text: str, expected: type[StepError]
) -> None:
    respx.post(HOOK_URL).respond(status, text=text)
    with pytest.raises(expected) as caught:
        await run_action(slack, "send_webhook_message", {"text": "hi"}, credentials=HOOK)
    assert text in caught.value.message
    assert HOOK_URL not in caught.value.message
    assert "XXXXXXXX" not in json.dumps(caught.value.details)


@pytest.mark.parametrize("case", [c for c in ERROR_CASES if c.status != 200], ids=lambda c: c.name)
async def test_webhook_error_cases(case: ErrorCase) -> None:
    await check_error_case(
        case, slack, "send_webhook_message", {"text": "hi"}, "POST", HOOK_URL, credentials=HOOK
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://hooks.example.com/services/T/B/X", "https URL on hooks.slack.com"),
        ("http://hooks.slack.com/services/T/B/X", "https URL on hooks.slack.com"),
        ("https://hooks.slack.com/elsewhere/T/B/X", "not a Slack incoming webhook"),
    ],
)
async def test_webhook_url_is_checked(url: str, message: str) -> None:
    with pytest.raises(StepError, match=message) as caught:
        await run_action(slack, "send_webhook_message", {"text": "hi"}, credentials={"webhook_url": url})
    assert caught.value.code == "connection_invalid"
    assert url not in caught.value.message
