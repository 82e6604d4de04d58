"""The ``wikipedia`` connector against respx mocks of the MediaWiki Action API and the REST API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from app.errors import StepError
from app.sdk import NotFound, RateLimited, UpstreamError
from app.sdk.testing import check_connector, run_action
from connectors.wikipedia import connector as wikipedia
from connectors.wikipedia import page_url
from tests.connectors.error_cases import ERROR_CASES, check_error_case

FIXTURES = Path(__file__).parent / "fixtures" / "wikipedia"
EN_API = "https://en.wikipedia.org/w/api.php"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_standard_checks() -> None:
    assert check_connector(wikipedia) == []
    assert wikipedia.auth_kinds() == ["none"]
    assert [op.name for op in wikipedia.actions()] == ["search", "summary", "request"]


@respx.mock
async def test_search_one_page() -> None:
    route = respx.get(EN_API).respond(json=fixture("search_page1.json"))
    out = await run_action(wikipedia, "search", {"query": "ada lovelace", "limit": 2})
    sent = route.calls.last.request
    assert route.call_count == 1
    assert sent.url.host == "en.wikipedia.org"
    assert dict(sent.url.params) == {
        "action": "query",
        "list": "search",
        "srsearch": "ada lovelace",
        "srlimit": "2",
        "srprop": "size|wordcount|timestamp|snippet",
        "format": "json",
        "formatversion": "2",
    }
    assert sent.headers["user-agent"].startswith("mashpipe/")
    assert out[0] == {
        "title": "Ada Lovelace",
        "pageid": 974,
        "url": "https://en.wikipedia.org/wiki/Ada_Lovelace",
        "snippet": "Ada King, Countess of Lovelace & mathematician",
        "snippet_html": (
            '<span class="searchmatch">Ada</span> King, Countess of '
            '<span class="searchmatch">Lovelace</span> &amp; mathematician'
        ),
        "wordcount": 8120,
        "size": 98765,
        "timestamp": "2025-02-11T10:20:30Z",
    }
    assert out[1]["url"] == "https://en.wikipedia.org/wiki/Ada_%28programming_language%29"


async def test_search_follows_continue_across_pages_in_another_language() -> None:
    with respx.mock() as mock:
        route = mock.get("https://fr.wikipedia.org/w/api.php").mock(
            side_effect=[
                httpx.Response(200, json=fixture("search_page1.json")),
                httpx.Response(200, json=fixture("search_page2.json")),
            ]
        )
        out = await run_action(wikipedia, "search", {"query": "Ada", "lang": "FR", "limit": 10})
    assert [hit["title"] for hit in out] == [
        "Ada Lovelace",
        "Ada (programming language)",
        "Analytical Engine",
        "AC/DC",
    ]
    assert out[3]["url"] == "https://fr.wikipedia.org/wiki/AC%2FDC"
    first, second = (dict(call.request.url.params) for call in route.calls)
    assert "sroffset" not in first
    assert second["sroffset"] == "2"
    assert second["continue"] == "-||"
    assert second["srsearch"] == "Ada"


async def test_search_api_errors_in_a_200_answer() -> None:
    with respx.mock() as mock:
        route = mock.get(EN_API)
        route.respond(
            json={"error": {"code": "srsearch-text-disabled", "info": "Full text searching is disabled."}}
        )
        with pytest.raises(
            UpstreamError, match="srsearch-text-disabled: Full text searching is disabled"
        ) as raised:
            await run_action(wikipedia, "search", {"query": "x"})
        assert raised.value.retry_kind is None
        route.respond(json={"error": {"code": "ratelimited", "info": "You've exceeded your rate limit."}})
        with pytest.raises(RateLimited) as limited:
            await run_action(wikipedia, "search", {"query": "x"})
        assert limited.value.retry_kind == "http_429"


@respx.mock
async def test_summary() -> None:
    route = respx.get("https://en.wikipedia.org/api/rest_v1/page/summary/Paris").respond(
        json=fixture("summary_paris.json")
    )
    out = await run_action(wikipedia, "summary", {"title": "Paris"})
    sent = route.calls.last.request
    assert dict(sent.url.params) == {"redirect": "true"}
    assert sent.headers["accept"] == "application/json"
    assert out == {
        "title": "Paris",
        "displaytitle": '<span class="mw-page-title-main">Paris</span>',
        "type": "standard",
        "pageid": 22989,
        "lang": "en",
        "description": "Capital and largest city of France",
        "wikibase_item": "Q90",
        "extract": "Paris is the capital and largest city of France.",
        "extract_html": "<p><b>Paris</b> is the capital and largest city of France.</p>",
        "url": "https://en.wikipedia.org/wiki/Paris",
        "thumbnail": {
            "source": "https://upload.wikimedia.org/wikipedia/commons/thumb/a/a1/Paris_skyline.jpg/320px-Paris_skyline.jpg",
            "width": 320,
            "height": 213,
        },
        "original_image": {
            "source": "https://upload.wikimedia.org/wikipedia/commons/a/a1/Paris_skyline.jpg",
            "width": 4000,
            "height": 2667,
        },
        "coordinates": {"lat": 48.856613, "lon": 2.352222},
        "timestamp": "2025-03-01T17:42:05Z",
    }


async def test_summary_title_encoding_redirect_and_language() -> None:
    redirected = {**fixture("summary_paris.json"), "title": "AC/DC", "lang": "de"}
    with respx.mock() as mock:
        route = mock.get("https://de.wikipedia.org/api/rest_v1/page/summary/AC%2FDC_%28Band%29").respond(
            302, headers={"Location": "https://de.wikipedia.org/api/rest_v1/page/summary/AC%2FDC"}
        )
        target = mock.get("https://de.wikipedia.org/api/rest_v1/page/summary/AC%2FDC").respond(
            json=redirected
        )
        out = await run_action(wikipedia, "summary", {"title": " AC/DC (Band) ", "lang": "de"})
    assert (
        route.calls.last.request.url.raw_path == b"/api/rest_v1/page/summary/AC%2FDC_%28Band%29?redirect=true"
    )
    assert target.call_count == 1
    assert out["title"] == "AC/DC"
    assert out["lang"] == "de"


async def test_summary_of_a_missing_page() -> None:
    problem = {
        "type": "https://mediawiki.org/wiki/HyperSwitch/errors/not_found",
        "title": "Not found.",
        "method": "get",
        "detail": "Page or revision not found.",
        "uri": "/en.wikipedia.org/v1/page/summary/No_such_page_xyz",
    }
    with respx.mock() as mock:
        mock.get("https://en.wikipedia.org/api/rest_v1/page/summary/No_such_page_xyz").respond(
            404, json=problem, headers={"Content-Type": "application/problem+json"}
        )
        with pytest.raises(NotFound, match="Page or revision not found"):
            await run_action(wikipedia, "summary", {"title": "No such page xyz"})


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("search", {"query": "x", "lang": "en.evil.com/"}),
        ("search", {"query": "x", "lang": "e"}),
        ("search", {"query": "x", "lang": "en@x"}),
        ("search", {"query": ""}),
        ("search", {"query": "x", "limit": 1001}),
        ("summary", {"title": "Foo#bar"}),
        ("summary", {"title": "   "}),
        ("summary", {"title": "x", "lang": "../"}),
    ],
)
async def test_invalid_params(operation: str, params: dict[str, Any]) -> None:
    with respx.mock() as mock:
        with pytest.raises(StepError) as raised:
            await run_action(wikipedia, operation, params)
        assert not mock.calls
    assert raised.value.code == "invalid_params"


def test_page_url() -> None:
    assert page_url("simple", "Rock and roll") == "https://simple.wikipedia.org/wiki/Rock_and_roll"
    assert page_url("zh-min-nan", "Tâi-oân") == "https://zh-min-nan.wikipedia.org/wiki/T%C3%A2i-o%C3%A2n"


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_search_errors(case: Any) -> None:
    await check_error_case(case, wikipedia, "search", {"query": "x"}, "GET", EN_API)


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_summary_errors(case: Any) -> None:
    url = "https://en.wikipedia.org/api/rest_v1/page/summary/Paris"
    await check_error_case(case, wikipedia, "summary", {"title": "Paris"}, "GET", url)
