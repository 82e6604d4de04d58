"""The example pipelines of the openai / google_sheets / stripe / email connectors, run end to end.

Upstream APIs are respx mocks; the SMTP server is a real aiosmtpd server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import respx
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from app.registry import Registry
from app.sdk.testing import settings_for_tests

from .examples_support import run_example

SHEET = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"


async def run_connected(name: str, inputs: dict[str, Any], connections: Mapping[str, Any]) -> Any:
    """``examples/<name>`` run at a fixed time, with ``connections``; the SMTP server is on 127.0.0.1."""
    settings = settings_for_tests(egress_allow="127.0.0.1")
    return await run_example(
        Registry.load(settings),
        name.removesuffix(".yaml"),
        inputs,
        connections=connections,
        settings=settings,
        run_id="example-run",
        started_at=datetime(2024, 5, 2, 6, 0, tzinfo=UTC),
    )


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


def charge(n: int, status: str, currency: str = "eur") -> dict[str, Any]:
    return {
        "id": f"ch_{n}",
        "object": "charge",
        "amount": 1000 * n,
        "currency": currency,
        "status": status,
        "paid": status == "succeeded",
        "refunded": False,
        "created": 1_714_600_000 + n,
        "billing_details": {"name": f"Buyer {n}"},
        "description": f"Order {n}",
        "metadata": {},
    }


async def test_stripe_daily_report_mails_the_totals() -> None:
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTPServer(inbox, loop=loop), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    charges = [charge(1, "succeeded"), charge(2, "failed"), charge(3, "succeeded", "usd")]
    connections = {
        "stripe": {"kind": "bearer", "token": "sk_test_example_0123"},
        "smtp": {
            "kind": "smtp",
            "host": "127.0.0.1",
            "port": str(port),
            "security": "none",
            "from_address": "reports@example.com",
        },
    }
    try:
        with respx.mock(assert_all_called=True) as mock:
            route = mock.get("https://api.stripe.com/v1/charges").respond(
                json={"object": "list", "has_more": False, "data": charges}
            )
            before = datetime.now(UTC)
            result = await run_connected(
                "stripe-daily-report.yaml", {"to": "finance@example.com", "hours": 24}, connections
            )
    finally:
        server.close()
        await server.wait_closed()
    assert result.status == "succeeded", result
    assert result.outputs == {"paid": 2, "failed": 1}
    since = int(route.calls.last.request.url.params["created[gte]"])
    assert abs(since - (before - timedelta(hours=24)).timestamp()) < 60
    content = inbox.envelopes[0].content
    assert isinstance(content, bytes)
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert message["To"] == "finance@example.com"
    assert message["Subject"] == "Stripe: 2 charges, 1 failed (last 24h)"
    part = message.get_body(("plain",))
    assert part is not None
    body = part.get_content()
    assert "EUR: 1 charges" in body
    assert "USD: 1 charges" in body
    assert "30.0 USD  Buyer 3  Order 3" in body


async def test_feed_summary_appends_one_row_per_post() -> None:
    item = (
        "<item><title>Post {0}</title><link>https://blog.example.org/{1}</link>"
        "<description>About {0}.</description></item>"
    )
    items = item.format("A", "a") + item.format("B", "b")
    feed = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>'
        f"<link>https://blog.example.org/</link>{items}</channel></rss>"
    )

    def chat(request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["messages"][1]["content"]
        title = prompt.split("\n", 1)[0].removeprefix("Title: ")
        return httpx.Response(
            200,
            json={
                "id": "c",
                "model": "gpt-4o-mini",
                "created": 1,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"Summary of {title}."},
                        "finish_reason": "stop",
                    }
                ],
            },
        )

    connections = {
        "openai": {"kind": "bearer", "token": "sk-example-0123"},
        "google-sheets": {"kind": "oauth2", "access_token": "ya29.example"},
    }
    with respx.mock(assert_all_called=True) as mock:
        mock.get("https://blog.example.org/feed.xml").respond(
            text=feed, headers={"Content-Type": "application/rss+xml"}
        )
        mock.post("https://api.openai.com/v1/chat/completions").mock(side_effect=chat)
        append = mock.post(
            url__startswith=f"https://sheets.googleapis.com/v4/spreadsheets/{SHEET}/values/"
        ).respond(
            json={"spreadsheetId": SHEET, "updates": {"updatedRange": "Digest!A2:D3", "updatedRows": 2}}
        )
        result = await run_connected(
            "feed-summary-sheet.yaml",
            {
                "feed": "https://blog.example.org/feed.xml",
                "spreadsheet_id": SHEET,
                "sheet": "Digest",
                "count": 5,
                "model": "gpt-4o-mini",
            },
            connections,
        )
    assert result.status == "succeeded", result
    assert result.outputs["appended"] == "Digest!A2:D3"
    sent = append.calls.last.request
    assert sent.url.path.endswith("/values/Digest!A:D:append")
    rows = json.loads(sent.content)["values"]
    assert [row[1:] for row in rows] == [
        ["Post A", "https://blog.example.org/a", "Summary of Post A."],
        ["Post B", "https://blog.example.org/b", "Summary of Post B."],
    ]
