"""The example pipelines using github, slack, discord, telegram and mastodon: valid with the installed
registry, and run end to end by the engine against respx mocks, with stored connections resolved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import respx

from app.engine.types import RunResult
from app.registry import Registry
from app.sdk.testing import settings_for_tests

from .examples_support import check_example_file, failures, run_example

FIXTURES = Path(__file__).parent / "fixtures"
MINE = [
    "github-release-announcer",
    "telegram-critical-issues",
    "mastodon-hashtag-feed",
    "github-issue-webhook",
]
SLACK_HOOK = "https://hooks.slack.com/services/T0/B0/secretsecretsecret"
DISCORD_HOOK = "https://discord.com/api/webhooks/42/discord-token-123"
TELEGRAM_TOKEN = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
CONNECTIONS: dict[str, dict[str, str]] = {
    "github": {"kind": "bearer", "token": "ghp_example"},
    "team-slack-hook": {"kind": "webhook_url", "webhook_url": SLACK_HOOK},
    "team-slack": {"kind": "bearer", "token": "xoxb-example"},
    "discord-releases": {"kind": "webhook_url", "webhook_url": DISCORD_HOOK},
    "ops-bot": {"kind": "path_token", "token": TELEGRAM_TOKEN},
    "mastodon-public": {"kind": "none", "instance": "mastodon.social"},
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load(settings_for_tests())


async def run_connected(
    registry: Registry, name: str, inputs: dict[str, Any] | None = None, trigger: dict[str, Any] | None = None
) -> RunResult:
    """:func:`run_example` with the stored connections above."""
    return await run_example(registry, name, inputs, trigger, connections=CONNECTIONS)


@pytest.mark.parametrize("name", MINE)
def test_example_is_valid_and_named_after_its_file(registry: Registry, name: str) -> None:
    check_example_file(registry, name)


@respx.mock
async def test_release_announcer_posts_each_new_release(registry: Registry) -> None:
    releases = json.loads((FIXTURES / "github" / "releases.json").read_text())
    items = [{**releases[2], "repository": "astral-sh/uv", "author": "release-bot"}]
    slack = respx.post(SLACK_HOOK).respond(200, text="ok")
    discord = respx.post(DISCORD_HOOK).respond(
        json={"id": "1", "channel_id": "2", "content": "", "timestamp": "2024-04-01T09:00:00+00:00"}
    )
    result = await run_connected(
        registry, "github-release-announcer", trigger={"kind": "poll", "items": items}
    )
    assert failures(result) == {}
    assert (result.outputs or {})["announced"] == 1
    assert json.loads(slack.calls.last.request.content)["text"] == (
        ":rocket: *astral-sh/uv* released "
        "<https://github.com/acme/widgets/releases/tag/v2.0.0|Widgets v2.0.0>"
    )
    embed = json.loads(discord.calls.last.request.content)["embeds"][0]
    assert embed == {
        "title": "astral-sh/uv v2.0.0",
        "description": "Changes in v2.0.0",
        "url": "https://github.com/acme/widgets/releases/tag/v2.0.0",
        "color": 5793266,
        "footer": {"text": "released by release-bot"},
        "fields": [],
    }


async def test_release_announcer_run_by_hand_posts_nothing(registry: Registry) -> None:
    result = await run_connected(registry, "github-release-announcer")
    assert failures(result) == {}
    assert result.steps["slack"].status == "skipped"
    assert result.steps["discord"].status == "skipped"


@respx.mock
async def test_telegram_alert_lists_the_critical_issues(registry: Registry) -> None:
    search = json.loads((FIXTURES / "github" / "search_issues.json").read_text())
    github = respx.get("https://api.github.com/search/issues").respond(json=search)
    telegram = respx.post(f"https://api.telegram.org/bot{TELEGRAM_TOKEN}/sendMessage").respond(
        json=json.loads((FIXTURES / "telegram" / "send_message.json").read_text())
    )
    result = await run_connected(registry, "telegram-critical-issues", {"chat_id": "-1001234567890"})
    assert failures(result) == {}
    assert (result.outputs or {})["count"] == 2
    assert github.calls.last.request.url.params["q"].endswith("label:release-blocker")
    sent = json.loads(telegram.calls.last.request.content)
    assert sent["chat_id"] == "-1001234567890"
    assert sent["link_preview_options"] == {"is_disabled": True}
    assert sent["text"] == (
        "2 critical issue(s) open:\n"
        "• #7 Memory leak in parser — https://github.com/octo/parser/issues/7\n"
        "• #9 Faster parser loop — https://github.com/octo/parser/pull/9"
    )


@respx.mock
async def test_telegram_alert_stays_quiet_without_issues(registry: Registry) -> None:
    respx.get("https://api.github.com/search/issues").respond(
        json={"total_count": 0, "incomplete_results": False, "items": []}
    )
    result = await run_connected(registry, "telegram-critical-issues")
    assert failures(result) == {}
    assert result.steps["alert"].status == "skipped"


@respx.mock
async def test_mastodon_hashtag_feed_items(registry: Registry) -> None:
    page = json.loads((FIXTURES / "mastodon" / "timeline_page1.json").read_text())
    route = respx.get("https://mastodon.social/api/v1/timelines/tag/rust").respond(json=page)
    result = await run_connected(registry, "mastodon-hashtag-feed", {"tag": "rust", "limit": 3})
    assert failures(result) == {}
    assert dict(route.calls.last.request.url.params) == {"limit": "3"}
    items = (result.outputs or {})["items"]
    assert [item["url"] for item in items] == [
        "https://social.example/@ada/113500000000000003",
        "https://social.example/@bob/113500000000000002",
    ]  # the boost (empty text) is left out
    assert items[1]["title"] == "@bob@other.example: Hello fediverse"


@respx.mock
async def test_github_issue_webhook_posts_opened_issues(registry: Registry) -> None:
    body = json.loads((FIXTURES / "github" / "webhook_issues_opened.json").read_text())
    slack = respx.post("https://slack.com/api/chat.postMessage").respond(
        json={"ok": True, "channel": "C1", "ts": "1.2", "message": {"text": "x"}}
    )
    trigger = {"kind": "webhook", "headers": {"x-github-event": "issues"}, "body": body, "query": {}}
    result = await run_connected(registry, "github-issue-webhook", trigger=trigger)
    assert failures(result) == {}
    assert (result.outputs or {})["posted"] is True
    sent = json.loads(slack.calls.last.request.content)
    assert sent["channel"] == "#triage"
    assert sent["text"] == (
        "New issue in acme/widgets: <https://github.com/acme/widgets/issues/44|#44 Webhook issue> by ada"
    )

    closed = {**trigger, "body": {**body, "action": "closed"}}
    result = await run_connected(registry, "github-issue-webhook", trigger=closed)
    assert result.steps["post"].status == "skipped"
    assert (result.outputs or {})["posted"] is False
