"""The ``rss`` connector: RSS 2.0 / 1.0 / 0.91 and Atom from respx mocks, the XML guard, the poll."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from app.errors import StepError
from app.sdk import InvalidResponse
from app.sdk.testing import check_connector, run_action, run_poll
from connectors.rss import connector as rss
from connectors.rss import digest, guard_xml
from tests.connectors.error_cases import ERROR_CASES, check_error_case

FIXTURES = Path(__file__).parent / "fixtures" / "rss"
FEED_URL = "https://blog.example.org/feed.xml"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def xml_response(body: bytes, **headers: str) -> httpx.Response:
    return httpx.Response(
        200, content=body, headers={"Content-Type": "application/rss+xml; charset=utf-8", **headers}
    )


def rss_doc(*items: tuple[str, str]) -> bytes:
    """A small RSS 2.0 document with (guid, title) items."""
    body = "".join(
        f"<item><title>{title}</title><guid>https://blog.example.org/p/{guid}</guid></item>"
        for guid, title in items
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        f"<link>https://blog.example.org/</link>{body}</channel></rss>"
    ).encode()


def test_standard_checks() -> None:
    assert check_connector(rss) == []
    assert rss.auth_kinds() == ["none"]
    assert rss.base_url is None
    assert [op.name for op in rss.actions()] == ["read", "request"]
    assert [op.name for op in rss.polls()] == ["new_entries"]


@respx.mock
async def test_read_rss20() -> None:
    route = respx.get(FEED_URL).mock(return_value=xml_response(fixture("rss20.xml")))
    out = await run_action(rss, "read", {"url": FEED_URL})
    sent = route.calls.last.request
    assert sent.method == "GET"
    assert str(sent.url) == FEED_URL
    assert sent.headers["accept"].startswith("application/rss+xml, application/atom+xml")
    assert "authorization" not in sent.headers
    assert out["title"] == "Example Engineering Blog"
    assert out["link"] == "https://blog.example.org/"
    assert out["description"] == "Notes from the team"
    assert out["language"] == "en-gb"
    assert out["version"] == "rss20"
    assert out["updated"] == "2025-03-03T09:30:00Z"
    first, second, third = out["entries"]
    assert first == {
        "id": "post-1042",
        "title": "Faster builds with remote caching",
        "link": "https://blog.example.org/2025/03/remote-caching",
        "url": "https://blog.example.org/2025/03/remote-caching",
        "summary": "<p>How we cut CI time in half.</p>",  # the <script> is sanitized away
        "published": "2025-03-03T08:00:00Z",  # +0100 turned into UTC
        "updated": None,
        "author": "Ada Lovelace",
        "tags": ["build", "python"],
        "enclosures": [],
    }
    # a relative link resolves against the feed's URL; content:encoded is the summary when no description
    assert second["link"] == second["url"] == second["id"] == "https://blog.example.org/2025/02/release-2-4"
    assert second["summary"] == "<p>What is new in <b>2.4</b>.</p>"
    assert second["published"] == "2025-02-28T17:45:10Z"
    assert second["enclosures"] == [
        {"url": "https://cdn.example.org/talk.mp3", "type": "audio/mpeg", "length": 12345678}
    ]
    # no guid, no link: a content hash, stable from one read to the next
    assert third["id"].startswith("sha256:")
    assert third["link"] is None
    assert third["published"] is None
    again = await run_action(rss, "read", {"url": FEED_URL})
    assert again["entries"][2]["id"] == third["id"]


@respx.mock
async def test_read_rss10_rdf() -> None:
    respx.get("https://news.example.net/index.rdf").respond(
        content=fixture("rss10.rdf"), headers={"Content-Type": "application/rdf+xml"}
    )
    out = await run_action(rss, "read", {"url": "https://news.example.net/index.rdf"})
    assert out["version"] == "rss10"
    assert out["title"] == "Example News (RDF)"
    assert [e["title"] for e in out["entries"]] == [
        "Parliament passes the budget",
        "Snow expected in the north",
    ]
    first = out["entries"][0]
    assert first["id"] == first["url"] == "https://news.example.net/a/1"
    assert first["published"] == "2025-01-15T20:04:00Z"
    assert first["author"] == "Newsroom"


@respx.mock
async def test_read_atom() -> None:
    respx.get("https://dev.example.fr/atom.xml").respond(
        content=fixture("atom.xml"), headers={"Content-Type": "application/atom+xml"}
    )
    out = await run_action(rss, "read", {"url": "https://dev.example.fr/atom.xml"})
    assert out["version"] == "atom10"
    assert out["title"] == "Journal d'un développeur"
    assert out["description"] == "Carnet technique"
    assert out["language"] == "fr"
    first, second = out["entries"]
    assert first["id"] == "urn:uuid:1b2c3d4e-0000-4000-8000-000000000001"
    assert first["title"] == "Écrire un parseur sûr"
    assert first["link"] == first["url"] == "https://dev.example.fr/2025/04/parseur"
    assert first["published"] == "2025-04-01T08:00:00Z"
    assert first["updated"] == "2025-04-02T08:15:00Z"
    assert first["author"] == "Camille"
    assert first["tags"] == ["sécurité"]
    assert first["summary"] == "<p>Les entités XML sont dangereuses.</p>"
    assert second["summary"] == "<p>Liste des changements.</p>"  # xhtml content
    assert second["published"] == "2025-03-20T12:00:00Z"  # no published: the updated time


@respx.mock
async def test_read_limit_and_redirect() -> None:
    respx.get("http://blog.example.org/rss").respond(301, headers={"Location": FEED_URL})
    respx.get(FEED_URL).mock(return_value=xml_response(fixture("rss20.xml")))
    out = await run_action(rss, "read", {"url": "http://blog.example.org/rss", "limit": 1})
    assert [e["id"] for e in out["entries"]] == ["post-1042"]


async def test_rss091_with_an_external_dtd_parses_without_fetching_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the parser tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with respx.mock() as mock:
        mock.get("http://old.example.com/rss.xml").respond(
            content=fixture("netscape_091.xml"), headers={"Content-Type": "text/xml"}
        )
        out = await run_action(rss, "read", {"url": "http://old.example.com/rss.xml"})
    assert out["version"] == "rss091n"
    assert out["entries"][0]["title"] == "Still here"
    assert out["entries"][0]["url"] == "http://old.example.com/still-here"


@pytest.mark.parametrize("name", ["billion_laughs.xml", "xxe.xml"])
async def test_entity_attacks_fail_cleanly(name: str) -> None:
    with respx.mock() as mock:
        mock.get(FEED_URL).mock(return_value=xml_response(fixture(name)))
        with pytest.raises(InvalidResponse) as raised:
            await run_action(rss, "read", {"url": FEED_URL})
    error = raised.value
    assert "XML entities" in error.message
    assert error.details == {"reason": "xml_entities"}
    assert "root:" not in error.message


def test_guard_refuses_entities_in_malformed_documents_too() -> None:
    # An unknown encoding makes the XML parser give up before the DOCTYPE: the fallback check applies.
    broken = b'<?xml version="1.0" encoding="no-such-codec"?><!DOCTYPE r [<!ENTITY a "b">]><rss>&a;</rss>'
    with pytest.raises(InvalidResponse, match="malformed document declares XML entities"):
        guard_xml(broken)
    wide = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "b">]><rss><channel>&a;</rss>'.encode("utf-16-le")
    with pytest.raises(InvalidResponse):
        guard_xml(wide)
    guard_xml(
        b"<rss><channel><title>not well-formed &amp; fine</title></rss>"
    )  # no entity: left to feedparser


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body><p>Just a page</p></body></html>", "text/html"),
        (b"", "application/rss+xml"),
        (b"plain text, not XML at all", "text/plain"),
    ],
)
async def test_not_a_feed(body: bytes, content_type: str) -> None:
    with respx.mock() as mock:
        mock.get(FEED_URL).respond(content=body, headers={"Content-Type": content_type})
        with pytest.raises(InvalidResponse):
            await run_action(rss, "read", {"url": FEED_URL})


@pytest.mark.parametrize("url", ["ftp://example.org/feed", "/feed.xml", "not a url", "file:///etc/passwd"])
async def test_url_must_be_absolute_http(url: str) -> None:
    with respx.mock() as mock:
        with pytest.raises(StepError) as raised:
            await run_action(rss, "read", {"url": url})
        assert not mock.calls
    assert raised.value.code == "invalid_params"


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_read_errors(case: Any) -> None:
    await check_error_case(case, rss, "read", {"url": FEED_URL}, "GET", FEED_URL)


async def test_new_entries_baseline_304_new_items_and_leftovers() -> None:
    with respx.mock() as mock:
        route = mock.get(FEED_URL)

        route.mock(return_value=xml_response(rss_doc(("b", "B"), ("a", "A")), ETag='"v1"'))
        first = await run_poll(rss, "new_entries", {"url": FEED_URL}, None)
        assert [e["title"] for e in first.items] == ["B", "A"]
        assert first.keys == ["https://blog.example.org/p/b", "https://blog.example.org/p/a"]
        assert first.cursor == {
            "seen": [digest("https://blog.example.org/p/b"), digest("https://blog.example.org/p/a")],
            "etag": '"v1"',
            "last_modified": None,
        }
        assert "if-none-match" not in route.calls.last.request.headers

        route.mock(return_value=httpx.Response(304))
        unchanged = await run_poll(rss, "new_entries", {"url": FEED_URL}, first.cursor)
        assert route.calls.last.request.headers["if-none-match"] == '"v1"'
        assert unchanged.items == []
        assert unchanged.cursor == first.cursor

        route.mock(
            return_value=xml_response(
                rss_doc(("e", "E"), ("d", "D"), ("c", "C"), ("b", "B")),
                **{"Last-Modified": "Wed, 05 Mar 2025 10:00:00 GMT"},
            )
        )
        second = await run_poll(rss, "new_entries", {"url": FEED_URL, "limit": 2}, first.cursor)
        assert [e["title"] for e in second.items] == ["E", "D"]
        assert second.keys == ["https://blog.example.org/p/e", "https://blog.example.org/p/d"]
        assert second.cursor["last_modified"] == "Wed, 05 Mar 2025 10:00:00 GMT"
        assert second.cursor["etag"] is None
        # seen: the feed's seen entries in feed order, then older ones no longer in the feed
        assert second.cursor["seen"] == [
            digest(f"https://blog.example.org/p/{k}") for k in ("e", "d", "b", "a")
        ]

        third = await run_poll(rss, "new_entries", {"url": FEED_URL, "limit": 2}, second.cursor)
        sent = route.calls.last.request
        assert sent.headers["if-modified-since"] == "Wed, 05 Mar 2025 10:00:00 GMT"
        assert [e["title"] for e in third.items] == ["C"]  # the leftover of the burst

        quiet = await run_poll(rss, "new_entries", {"url": FEED_URL}, third.cursor)
        assert quiet.items == []


async def test_new_entries_first_poll_limit_still_baselines_everything() -> None:
    with respx.mock() as mock:
        mock.get(FEED_URL).mock(return_value=xml_response(rss_doc(("c", "C"), ("b", "B"), ("a", "A"))))
        first = await run_poll(rss, "new_entries", {"url": FEED_URL, "limit": 1}, None)
        assert [e["title"] for e in first.items] == ["C"]
        again = await run_poll(rss, "new_entries", {"url": FEED_URL, "limit": 1}, first.cursor)
    assert again.items == []


async def test_new_entries_seen_list_is_bounded() -> None:
    old = [digest(f"old-{i}") for i in range(1500)]
    with respx.mock() as mock:
        mock.get(FEED_URL).mock(return_value=xml_response(rss_doc(("n", "N"))))
        result = await run_poll(rss, "new_entries", {"url": FEED_URL}, {"seen": old})
    assert [e["title"] for e in result.items] == ["N"]
    assert len(result.cursor["seen"]) == 1000
    assert result.cursor["seen"][:2] == [digest("https://blog.example.org/p/n"), old[0]]


async def test_new_entries_refuses_an_unsafe_feed() -> None:
    with respx.mock() as mock:
        mock.get(FEED_URL).mock(return_value=xml_response(fixture("xxe.xml")))
        with pytest.raises(InvalidResponse):
            await run_poll(rss, "new_entries", {"url": FEED_URL}, None)
