"""The ``telegram`` connector: sendMessage and the getUpdates poll, with the token kept out of logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from app.errors import StepError
from app.sdk import AuthFailed, ConnectionFailed, InvalidResponse, NotFound, RateLimited, UpstreamError
from app.sdk.testing import check_connector, run_action, run_poll
from connectors.telegram import connector as telegram
from tests.connectors.error_cases import ERROR_CASES, ErrorCase, check_error_case

FIXTURES = Path(__file__).parent / "fixtures" / "telegram"
TOKEN = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BOT = {"kind": "path_token", "token": TOKEN}
API = f"https://api.telegram.org/bot{TOKEN}"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def printed_chain(error: BaseException) -> str:
    """What a traceback would print of the exception chain (causes, and contexts not suppressed)."""
    seen: list[str] = []
    current: BaseException | None = error
    while current is not None and len(seen) < 10:
        seen.append(f"{type(current).__name__}: {current}")
        if current.__cause__ is not None and current.__cause__ is not current:
            current = current.__cause__
        elif not current.__suppress_context__ and current.__context__ is not current:
            current = current.__context__
        else:
            current = None
    return "\n".join(seen)


def test_standard_checks() -> None:
    assert check_connector(telegram) == []
    assert telegram.auth_kinds() == ["path_token"]
    assert telegram.test_request == ("GET", "/getMe")
    assert telegram.rate_limit is not None
    assert telegram.rate_limit.describe() == {"requests": 30, "per": "second"}
    assert [op.name for op in telegram.actions()] == ["send_message", "request"]
    assert [op.name for op in telegram.polls()] == ["updates"]


@respx.mock
async def test_send_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    route = respx.post(f"{API}/sendMessage").respond(json=fixture("send_message.json"))
    log: list[str] = []
    out = await run_action(
        telegram,
        "send_message",
        {
            "chat_id": -1001234567890,
            "text": "Disk 91% full on db-1",
            "parse_mode": "HTML",
            "disable_link_preview": True,
            "disable_notification": True,
            "reply_to_message_id": 12,
            "message_thread_id": 3,
        },
        credentials=BOT,
        log=log,
    )
    assert out == {
        "message_id": 4242,
        "date": "2024-05-02T10:06:40Z",
        "chat": {
            "id": -1001234567890,
            "type": "supergroup",
            "title": "Ops alerts",
            "username": None,
            "first_name": None,
        },
        "sender": {"id": 7000, "is_bot": True, "first_name": "AlertBot", "username": "alert_bot"},
        "text": "Disk 91% full on db-1",
        "caption": None,
        "message_thread_id": 3,
    }
    sent = route.calls.last.request
    assert "authorization" not in sent.headers
    assert json.loads(sent.content) == {
        "chat_id": -1001234567890,
        "text": "Disk 91% full on db-1",
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
        "disable_notification": True,
        "reply_parameters": {"message_id": 12, "allow_sending_without_reply": True},
        "message_thread_id": 3,
    }
    assert "api.telegram.org/bot***/sendMessage" in caplog.text  # httpx's request line, masked
    assert TOKEN not in caplog.text
    assert TOKEN.split(":")[1] not in caplog.text
    assert TOKEN not in " ".join(log)


@respx.mock
async def test_send_to_a_channel_username() -> None:
    route = respx.post(f"{API}/sendMessage").respond(json=fixture("send_message.json"))
    await run_action(telegram, "send_message", {"chat_id": "@ops_news", "text": "hi"}, credentials=BOT)
    assert json.loads(route.calls.last.request.content) == {"chat_id": "@ops_news", "text": "hi"}


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "fragment"),
    [
        (
            400,
            {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
            {},
            UpstreamError,
            "chat not found",
        ),
        (
            401,
            {"ok": False, "error_code": 401, "description": "Unauthorized"},
            {},
            AuthFailed,
            "Unauthorized",
        ),
        (
            403,
            {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
            {},
            AuthFailed,
            "blocked",
        ),
        (404, {"ok": False, "error_code": 404, "description": "Not Found"}, {}, NotFound, "bot token"),
        (
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 5",
                "parameters": {"retry_after": 5},
            },
            {},
            RateLimited,
            "retry after 5",
        ),
        (
            400,
            {
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: group chat was upgraded to a supergroup chat",
                "parameters": {"migrate_to_chat_id": -1001234567890},
            },
            {},
            UpstreamError,
            "now the supergroup -1001234567890",
        ),
        (
            502,
            {"ok": False, "error_code": 502, "description": "Bad Gateway"},
            {},
            UpstreamError,
            "Bad Gateway",
        ),
    ],
)
@respx.mock
async def test_telegram_errors_are_typed_and_never_name_the_token(
    status: int, body: dict[str, Any], headers: dict[str, str], expected: type[StepError], fragment: str
) -> None:
    respx.post(f"{API}/sendMessage").respond(status, json=body, headers=headers)
    with pytest.raises(expected) as caught:
        await run_action(telegram, "send_message", {"chat_id": 1, "text": "hi"}, credentials=BOT)
    error = caught.value
    assert type(error) is expected
    assert error.message.startswith(f"Telegram sendMessage failed ({status})")
    assert fragment in error.message
    assert TOKEN not in error.message
    assert TOKEN not in json.dumps(error.details)
    if expected is RateLimited:
        assert error.retry_after == 5.0
        assert error.retry_kind == "http_429"
    if status >= 500:
        assert error.retry_kind == "http_5xx"
    if "migrate_to_chat_id" in body.get("parameters", {}):
        assert error.details["migrate_to_chat_id"] == -1001234567890


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_error_cases(case: ErrorCase) -> None:
    error = await check_error_case(
        case,
        telegram,
        "send_message",
        {"chat_id": 1, "text": "hi"},
        "POST",
        f"{API}/sendMessage",
        credentials=BOT,
    )
    assert TOKEN not in error.message


@respx.mock
async def test_raw_request_reuses_the_path_token_and_hides_it() -> None:
    route = respx.get(f"{API}/getMe").respond(json={"ok": True, "result": {"id": 7000, "is_bot": True}})
    out = await run_action(telegram, "request", {"path": "/getMe"}, credentials=BOT)
    assert route.called
    assert out["url"] == "https://api.telegram.org/bot***/getMe"
    assert out["body"]["result"]["id"] == 7000


@respx.mock
async def test_answers_without_ok_are_invalid() -> None:
    respx.post(f"{API}/sendMessage").respond(json={"result": {}})
    with pytest.raises(InvalidResponse, match="without `ok`"):
        await run_action(telegram, "send_message", {"chat_id": 1, "text": "hi"}, credentials=BOT)


@respx.mock
async def test_network_errors_do_not_leak_the_token() -> None:
    respx.post(f"{API}/sendMessage").mock(side_effect=httpx.ConnectError(f"cannot reach {API}/sendMessage"))
    with pytest.raises(ConnectionFailed) as caught:
        await run_action(telegram, "send_message", {"chat_id": 1, "text": "hi"}, credentials=BOT)
    assert TOKEN not in caught.value.message
    assert TOKEN not in printed_chain(caught.value)


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"chat_id": 1, "text": ""}, "text"),
        ({"chat_id": 1, "text": "x" * 4097}, "text"),
        ({"chat_id": "ops", "text": "x"}, "chat_id is a number or an @channelusername"),
        ({"chat_id": 1, "text": "x", "parse_mode": "BBCode"}, "parse_mode"),
    ],
)
async def test_params_are_checked(params: dict[str, Any], problem: str) -> None:
    with pytest.raises(StepError) as caught:
        await run_action(telegram, "send_message", params, credentials=BOT)
    assert caught.value.code == "invalid_params"
    assert problem in caught.value.message


async def test_a_token_that_would_move_the_path_is_refused() -> None:
    with pytest.raises(StepError, match="cannot appear in a URL path"):
        await run_action(
            telegram, "send_message", {"chat_id": 1, "text": "x"}, credentials={"token": "1:a/../x"}
        )


# -- updates poll -----------------------------------------------------------------------------------


@respx.mock
async def test_updates_baseline_then_offset_cursor() -> None:
    route = respx.post(f"{API}/getUpdates").respond(json=fixture("get_updates.json"))
    baseline = await run_poll(telegram, "updates", {}, None, credentials=BOT)
    assert json.loads(route.calls.last.request.content) == {"timeout": 0, "limit": 100}
    assert baseline.keys == ["872401235", "872401236", "872401237", "872401238", "872401239"]
    assert baseline.cursor == 872401240
    kinds = [(u["type"], u["text"], u["chat_id"]) for u in baseline.items]
    assert kinds == [
        ("message", "/status", 111222333),
        ("edited_message", "/status now", 111222333),
        ("channel_post", "Photo of the day", -1009876543210),
        ("callback_query", "ack:42", 111222333),
        ("my_chat_member", None, -1001234567890),
    ]
    first = baseline.items[0]
    assert first["message"]["sender"]["username"] == "ada_l"
    assert first["message"]["date"] == "2024-05-02T10:00:00Z"
    assert first["data"]["entities"][0]["type"] == "bot_command"
    assert baseline.items[4]["message"] is None

    route.respond(json={"ok": True, "result": []})
    quiet = await run_poll(
        telegram,
        "updates",
        {"allowed_updates": ["message", "callback_query"], "limit": 50},
        baseline.cursor,
        credentials=BOT,
    )
    assert (quiet.items, quiet.cursor) == ([], 872401240)
    assert json.loads(route.calls.last.request.content) == {
        "timeout": 0,
        "limit": 50,
        "offset": 872401240,
        "allowed_updates": ["message", "callback_query"],
    }

    newer = {"ok": True, "result": [fixture("get_updates.json")["result"][0] | {"update_id": 872401241}]}
    route.respond(json=newer)
    later = await run_poll(telegram, "updates", {}, quiet.cursor, credentials=BOT)
    assert later.keys == ["872401241"]
    assert later.cursor == 872401242


@respx.mock
async def test_updates_while_a_webhook_is_set() -> None:
    respx.post(f"{API}/getUpdates").respond(
        409,
        json={
            "ok": False,
            "error_code": 409,
            "description": "Conflict: can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first",
        },
    )
    with pytest.raises(UpstreamError, match="deleteWebhook") as caught:
        await run_poll(telegram, "updates", {}, None, credentials=BOT)
    assert caught.value.retry_kind is None


@respx.mock
async def test_updates_result_must_be_a_list() -> None:
    respx.post(f"{API}/getUpdates").respond(json={"ok": True, "result": {"update_id": 1}})
    with pytest.raises(InvalidResponse, match="did not return a list"):
        await run_poll(telegram, "updates", {}, None, credentials=BOT)
