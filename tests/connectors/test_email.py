"""The ``email`` connector against a real aiosmtpd server on 127.0.0.1, started by each test."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from app.errors import EgressDenied, StepError
from app.sdk import UpstreamError
from app.sdk.testing import check_connector, run_action, settings_for_tests
from connectors.email import connector as mail

ALLOW_LOCAL = settings_for_tests(egress_allow="127.0.0.1")


@dataclass
class Inbox:
    """What the test server received, and the addresses it refuses."""

    envelopes: list[Envelope] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 2.0.0 Message accepted for delivery"


@dataclass
class Smtp:
    inbox: Inbox
    port: int

    def connection(self, **extra: str) -> dict[str, str]:
        return {
            "kind": "smtp",
            "host": "127.0.0.1",
            "port": str(self.port),
            "security": "none",
            "from_address": "reports@example.com",
            **extra,
        }


@pytest.fixture
async def smtp() -> AsyncIterator[Smtp]:
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTPServer(inbox, hostname="mx.test", loop=loop), "127.0.0.1", 0
    )
    try:
        yield Smtp(inbox, server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def received(envelope: Envelope) -> Any:
    assert isinstance(envelope.content, bytes)
    return email.message_from_bytes(envelope.content, policy=email.policy.default)


def test_standard_checks() -> None:
    assert check_connector(mail) == []
    assert mail.auth_kinds() == ["smtp"]
    fields = {f["name"]: f for f in mail.describe()["auth"][0]["fields"]}
    assert fields["host"] == {"name": "host", "label": "SMTP server host name", "secret": False}
    assert fields["password"]["secret"] is True
    assert fields["password"]["required"] is False


async def test_send_text_and_html_to_every_recipient(smtp: Smtp) -> None:
    out = await run_action(
        mail,
        "send",
        {
            "to": ["ada@example.org", "alan@example.org"],
            "cc": ["grace@example.org"],
            "bcc": ["audit@example.org"],
            "subject": "Daily report: 3 charges, 42.00 €",
            "text": "Hello,\n\nThree charges today.\n",
            "html": "<p>Three charges <b>today</b>.</p>",
            "from_name": "Mashpipe Reports",
            "reply_to": "finance@example.com",
        },
        credentials=smtp.connection(),
        settings=ALLOW_LOCAL,
    )
    assert len(smtp.inbox.envelopes) == 1
    envelope = smtp.inbox.envelopes[0]
    assert envelope.mail_from == "reports@example.com"
    assert envelope.rcpt_tos == [
        "ada@example.org",
        "alan@example.org",
        "grace@example.org",
        "audit@example.org",
    ]
    message = received(envelope)
    assert message["From"] == "Mashpipe Reports <reports@example.com>"
    assert message["To"] == "ada@example.org, alan@example.org"
    assert message["Cc"] == "grace@example.org"
    assert message["Bcc"] is None
    assert message["Reply-To"] == "finance@example.com"
    assert message["Subject"] == "Daily report: 3 charges, 42.00 €"
    assert message["Message-ID"] == out["message_id"]
    assert out["message_id"].endswith("@example.com>")
    plain = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert plain == "Hello,\n\nThree charges today.\n"
    html = message.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert html == "<p>Three charges <b>today</b>.</p>\n"
    assert out["sender"] == "reports@example.com"
    assert out["accepted"] == envelope.rcpt_tos
    assert out["refused"] == {}
    assert out["response"].startswith("2.0.0 Message accepted")


async def test_refused_recipients_are_reported(smtp: Smtp) -> None:
    smtp.inbox.refuse = {"ghost@example.org"}
    out = await run_action(
        mail,
        "send",
        {
            "to": ["ada@example.org", "ghost@example.org"],
            "subject": "Hi",
            "text": "x",
            "from": "me@example.net",
        },
        credentials=smtp.connection(),
        settings=ALLOW_LOCAL,
    )
    assert out["accepted"] == ["ada@example.org"]
    assert out["refused"] == {"ghost@example.org": "550 5.1.1 No such user here"}
    assert smtp.inbox.envelopes[0].mail_from == "me@example.net"
    smtp.inbox.refuse = {"ada@example.org"}
    with pytest.raises(UpstreamError, match="refused every recipient") as raised:
        await run_action(
            mail,
            "send",
            {"to": ["ada@example.org"], "subject": "Hi", "text": "x"},
            credentials=smtp.connection(),
            settings=ALLOW_LOCAL,
        )
    assert raised.value.details == {"refused": {"ada@example.org": "550 5.1.1 No such user here"}}


async def test_the_egress_guard_applies_to_the_smtp_host(smtp: Smtp) -> None:
    with pytest.raises(EgressDenied, match="loopback"):
        await run_action(
            mail,
            "send",
            {"to": ["a@example.org"], "subject": "s", "text": "t"},
            credentials=smtp.connection(),
        )
    assert smtp.inbox.envelopes == []


async def test_a_host_name_is_resolved_once_and_the_checked_address_is_used(smtp: Smtp) -> None:
    looked_up: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        looked_up.append((host, port))
        return ["127.0.0.1"]

    await run_action(
        mail,
        "send",
        {"to": ["a@example.org"], "subject": "s", "text": "t"},
        credentials=smtp.connection(host="mail.example.test"),
        settings=ALLOW_LOCAL,
        resolver=resolver,
    )
    assert looked_up == [("mail.example.test", smtp.port)]
    assert len(smtp.inbox.envelopes) == 1

    async def private(host: str, port: int) -> list[str]:
        return ["10.0.0.7"]

    with pytest.raises(EgressDenied, match=r"mail.example.test \(10.0.0.7, private\)"):
        await run_action(
            mail,
            "send",
            {"to": ["a@example.org"], "subject": "s", "text": "t"},
            credentials=smtp.connection(host="mail.example.test"),
            settings=ALLOW_LOCAL,
            resolver=private,
        )


async def test_starttls_required_but_not_offered_fails_clearly(smtp: Smtp) -> None:
    with pytest.raises(UpstreamError, match="STARTTLS extension not supported"):
        await run_action(
            mail,
            "send",
            {"to": ["a@example.org"], "subject": "s", "text": "t"},
            credentials=smtp.connection(security="starttls"),
            settings=ALLOW_LOCAL,
        )
    assert smtp.inbox.envelopes == []


async def test_check_connection(smtp: Smtp) -> None:
    out = await run_action(mail, "check_connection", {}, credentials=smtp.connection(), settings=ALLOW_LOCAL)
    assert out["host"] == "127.0.0.1"
    assert out["port"] == smtp.port
    assert out["encrypted"] is False
    assert out["logged_in"] is False
    assert "8bitmime" in out["extensions"]


async def test_nobody_listening_is_a_connection_failure() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StepError) as raised:
        await run_action(
            mail,
            "check_connection",
            {},
            credentials={"kind": "smtp", "host": "127.0.0.1", "port": str(port), "security": "none"},
            settings=ALLOW_LOCAL,
        )
    assert raised.value.code == "connection_failed"
    assert raised.value.retry_kind == "connection"


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        ({"host": "smtp.example.com", "security": "ssl"}, "security must be starttls, tls or none"),
        ({"host": "smtp.example.com", "port": "smtp"}, "port must be a number"),
        ({"host": "smtp.example.com", "port": "70000"}, "port is malformed"),
        ({"host": "smtp example.com"}, "host is malformed"),
        (
            {"host": "smtp.example.com", "security": "none", "username": "u", "password": "p4ss"},
            "unencrypted",
        ),
    ],
)
async def test_bad_connections_are_refused(connection: dict[str, str], message: str) -> None:
    with pytest.raises(StepError, match=message) as raised:
        await run_action(mail, "check_connection", {}, credentials={"kind": "smtp", **connection})
    assert raised.value.code == "connection_invalid"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"to": [], "subject": "s", "text": "t"}, "to"),
        ({"to": ["not-an-address"], "subject": "s", "text": "t"}, "not email addresses"),
        ({"to": ["a@example.org"], "subject": "s\r\nBcc: x@evil.test", "text": "t"}, "single line"),
        ({"to": ["a@example.org"] * 101, "subject": "s", "text": "t"}, "at most 100 recipients"),
        ({"to": ["a@example.org"], "subject": "s", "text": "t", "from": "x\n@y.z"}, "from"),
    ],
)
async def test_send_params_are_validated(params: dict[str, Any], message: str) -> None:
    with pytest.raises(StepError, match=message) as raised:
        await run_action(mail, "send", params, credentials={"kind": "smtp", "host": "smtp.example.com"})
    assert raised.value.code == "invalid_params"


async def test_a_sender_is_needed() -> None:
    with pytest.raises(StepError, match="give `from`") as raised:
        await run_action(
            mail,
            "send",
            {"to": ["a@example.org"], "subject": "s", "text": "t"},
            credentials={"kind": "smtp", "host": "smtp.example.com"},
        )
    assert raised.value.code == "invalid_params"
