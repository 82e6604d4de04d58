"""The ``discord`` connector: executing a channel webhook, with respx."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import respx

from app.errors import StepError
from app.sdk import NotFound, RateLimited
from app.sdk.testing import check_connector, run_action
from connectors.discord import connector as discord
from tests.connectors.error_cases import ERROR_CASES, ErrorCase, check_error_case

TOKEN = "Ab3dEfGh1jKlMn0pQrStUvWxYz-_0123456789abcdefghijklmnopqrstuvwxyzAB"
HOOK_URL = f"https://discord.com/api/webhooks/1234567890123456789/{TOKEN}"
HOOK = {"kind": "webhook_url", "webhook_url": HOOK_URL}

# The shape of the message object Discord returns with ?wait=true
MESSAGE = {
    "id": "1180000000000000001",
    "type": 0,
    "content": "Release v2.0 is out",
    "channel_id": "1170000000000000002",
    "author": {"bot": True, "id": "1234567890123456789", "username": "Releases", "avatar": None},
    "attachments": [],
    "embeds": [],
    "mentions": [],
    "mention_roles": [],
    "pinned": False,
    "mention_everyone": False,
    "tts": False,
    "timestamp": "2024-05-02T10:00:00.123000+00:00",
    "edited_timestamp": None,
    "flags": 0,
    "components": [],
    "webhook_id": "1234567890123456789",
}


def test_standard_checks() -> None:
    assert check_connector(discord) == []
    assert discord.auth_kinds() == ["webhook_url"]
    assert discord.test_request is None  # executing a webhook posts: a webhook URL is checked by use
    assert [op.name for op in discord.actions()] == ["send_message", "request"]


@respx.mock
async def test_send_message_with_embeds_waits_for_the_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    route = respx.post(HOOK_URL).respond(json=MESSAGE)
    out = await run_action(
        discord,
        "send_message",
        {
            "content": "Release v2.0 is out",
            "username": "Releases",
            "embeds": [
                {
                    "title": "v2.0",
                    "url": "https://github.com/acme/widgets/releases/tag/v2.0",
                    "description": "Faster, smaller.",
                    "color": 0x5865F2,
                    "timestamp": "2024-05-02T10:00:00Z",
                    "fields": [{"name": "Downloads", "value": "42", "inline": True}],
                    "footer": {"text": "acme/widgets"},
                }
            ],
            "thread_id": "1170000000000000003",
        },
        credentials=HOOK,
    )
    assert out == {
        "delivered": True,
        "id": "1180000000000000001",
        "channel_id": "1170000000000000002",
        "content": "Release v2.0 is out",
        "timestamp": "2024-05-02T10:00:00.123000Z",
    }
    sent = route.calls.last.request
    assert dict(sent.url.params) == {"wait": "true", "thread_id": "1170000000000000003"}
    assert json.loads(sent.content) == {
        "tts": False,
        "allowed_mentions": {"parse": []},
        "content": "Release v2.0 is out",
        "embeds": [
            {
                "title": "v2.0",
                "description": "Faster, smaller.",
                "url": "https://github.com/acme/widgets/releases/tag/v2.0",
                "color": 5793266,
                "timestamp": "2024-05-02T10:00:00Z",
                "footer": {"text": "acme/widgets"},
                "fields": [{"name": "Downloads", "value": "42", "inline": True}],
            }
        ],
        "username": "Releases",
    }
    assert TOKEN not in caplog.text


@respx.mock
async def test_send_message_without_waiting() -> None:
    route = respx.post(HOOK_URL).respond(204)
    out = await run_action(
        discord,
        "send_message",
        {"content": "@everyone ping", "wait": False, "allowed_mentions": ["users"]},
        credentials=HOOK,
    )
    assert out == {"delivered": True, "id": None, "channel_id": None, "content": None, "timestamp": None}
    sent = route.calls.last.request
    assert sent.url.params["wait"] == "false"
    assert json.loads(sent.content)["allowed_mentions"] == {"parse": ["users"]}


@respx.mock
async def test_429_with_only_the_body_retry_after() -> None:
    respx.post(HOOK_URL).respond(
        429, json={"message": "You are being rate limited.", "retry_after": 0.529, "global": False}
    )
    with pytest.raises(RateLimited) as caught:
        await run_action(discord, "send_message", {"content": "hi"}, credentials=HOOK)
    assert caught.value.retry_after == 0.529
    assert caught.value.retry_kind == "http_429"
    assert "webhook" in caught.value.message


@respx.mock
async def test_429_global_and_reset_after_header() -> None:
    respx.post(HOOK_URL).respond(429, json={"message": "slow down", "retry_after": 2, "global": True})
    with pytest.raises(RateLimited, match=r"\(global\)"):
        await run_action(discord, "send_message", {"content": "hi"}, credentials=HOOK)
    respx.post(HOOK_URL).respond(429, content=b"", headers={"X-RateLimit-Reset-After": "1.5"})
    with pytest.raises(RateLimited) as caught:
        await run_action(discord, "send_message", {"content": "hi"}, credentials=HOOK)
    assert caught.value.retry_after == 1.5


@respx.mock
async def test_unknown_webhook_names_discord_reason_not_the_token() -> None:
    respx.post(HOOK_URL).respond(404, json={"message": "Unknown Webhook", "code": 10015})
    with pytest.raises(NotFound) as caught:
        await run_action(discord, "send_message", {"content": "hi"}, credentials=HOOK)
    assert "Unknown Webhook" in caught.value.message
    assert TOKEN not in caught.value.message
    assert TOKEN not in json.dumps(caught.value.details)


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_error_cases(case: ErrorCase) -> None:
    await check_error_case(
        case, discord, "send_message", {"content": "hi"}, "POST", HOOK_URL, credentials=HOOK
    )


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({}, "give `content` or `embeds`"),
        ({"content": "x" * 2001}, "content"),
        ({"content": "x", "embeds": [{"title": "t"}] * 11}, "embeds"),
        ({"embeds": [{"description": "x" * 4000}, {"description": "y" * 2500}]}, "6000 characters"),
        ({"content": "x", "embeds": [{"color": 0x1000000}]}, "color"),
        ({"content": "x", "thread_id": "general"}, "thread_id"),
        ({"content": "x", "allowed_mentions": ["here"]}, "allowed_mentions"),
    ],
)
async def test_params_are_checked(params: dict[str, Any], problem: str) -> None:
    with pytest.raises(StepError) as caught:
        await run_action(discord, "send_message", params, credentials=HOOK)
    assert caught.value.code == "invalid_params"
    assert problem in caught.value.message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://discord.example/api/webhooks/1/abc", "https URL on discord.com"),
        ("https://discord.com/api/channels/1/messages", "not a Discord webhook"),
        ("https://discord.com/api/webhooks/1/abc/../../users/@me", "not a Discord webhook"),
    ],
)
async def test_webhook_url_is_checked(url: str, message: str) -> None:
    with pytest.raises(StepError, match=message) as caught:
        await run_action(discord, "send_message", {"content": "hi"}, credentials={"webhook_url": url})
    assert caught.value.code == "connection_invalid"


@respx.mock
async def test_legacy_discordapp_host_and_versioned_path_are_accepted() -> None:
    url = "https://discordapp.com/api/v10/webhooks/1/tok_en-1"
    route = respx.post(url).respond(json=MESSAGE)
    await run_action(discord, "send_message", {"content": "hi"}, credentials={"webhook_url": url})
    assert route.calls.last.request.url.params["wait"] == "true"
