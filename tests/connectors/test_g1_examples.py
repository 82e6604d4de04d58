"""The example pipelines using hackernews, rss, reddit, wikipedia, frankfurter and openmeteo:
valid with the installed registry, and run end to end by the engine against respx mocks."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from app.registry import Registry
from app.sdk.testing import settings_for_tests

from .examples_support import check_example_file, failures, run_example

FIXTURES = Path(__file__).parent / "fixtures"
MINE = ["news-digest", "currency-alert", "city-weather", "reddit-watch", "wiki-lookup"]
HN = "https://hacker-news.firebaseio.com/v0"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load(settings_for_tests())


@pytest.mark.parametrize("name", MINE)
def test_example_is_valid_and_named_after_its_file(registry: Registry, name: str) -> None:
    check_example_file(registry, name)


@respx.mock
async def test_news_digest(registry: Registry) -> None:
    def story(item_id: int, title: str, score: int, url: str | None) -> dict[str, Any]:
        return {"id": item_id, "type": "story", "title": title, "url": url, "score": score}

    stories = {
        1: story(1, "Python 3.14 released", 900, "https://python.org/3.14"),
        2: story(2, "Rust in the kernel", 700, "https://lwn.net/rust"),
        3: story(3, "Ask HN: Python or Go?", 60, None),
        4: story(4, "A tiny python trick", 10, "https://x.test/t"),
    }
    respx.get(f"{HN}/topstories.json").respond(json=list(stories))
    for item_id, body in stories.items():
        respx.get(f"{HN}/item/{item_id}.json").respond(json=body)
    feed = (FIXTURES / "rss" / "rss20.xml").read_bytes().replace(b"Faster builds", b"Faster Python builds")
    respx.get("https://blog.python.org/feeds/posts/default?alt=rss").respond(
        content=feed, headers={"Content-Type": "application/rss+xml"}
    )
    result = await run_example(registry, "news-digest", {"topic": "python"})
    assert failures(result) == {}
    items = result.outputs["items"] if result.outputs else None
    assert [(i["title"], i["score"], i["source"]) for i in items or []] == [
        ("Python 3.14 released", 900, "Hacker News"),
        ("Ask HN: Python or Go?", 60, "Hacker News"),
        ("Faster Python builds with remote caching", 50, "Example Engineering Blog"),
    ]
    assert items is not None
    assert items[1]["url"] == "https://news.ycombinator.com/item?id=3"


@respx.mock
async def test_news_digest_survives_a_dead_feed(registry: Registry) -> None:
    respx.get(f"{HN}/topstories.json").respond(json=[1])
    respx.get(f"{HN}/item/1.json").respond(
        json={"id": 1, "type": "story", "title": "python news", "url": "https://a.test", "score": 99}
    )
    respx.get("https://blog.python.org/feeds/posts/default?alt=rss").respond(404)
    result = await run_example(registry, "news-digest")
    assert result.status == "succeeded"
    assert result.steps["blog"].status == "failed"
    assert [i["title"] for i in (result.outputs or {})["items"]] == ["python news"]


def _series(rates: list[float]) -> list[dict[str, Any]]:
    start = date(2025, 3, 3)
    return [
        {"date": (start + timedelta(days=i)).isoformat(), "base": "EUR", "quote": "USD", "rate": rate}
        for i, rate in enumerate(rates)
    ]


@respx.mock
async def test_currency_alert_posts_when_the_move_is_big(registry: Registry) -> None:
    rates = respx.get("https://api.frankfurter.dev/v2/rates").respond(json=_series([1.05, 1.06, 1.0815]))
    hook = respx.post("https://hooks.example.org/alert").respond(200, json={"ok": True})
    result = await run_example(
        registry, "currency-alert", {"webhook_url": "https://hooks.example.org/alert", "threshold_pct": 2.5}
    )
    assert failures(result) == {}
    assert dict(rates.calls.last.request.url.params)["quotes"] == "USD"
    outputs = result.outputs or {}
    assert outputs["alert"] is True
    assert outputs["change"]["pct"] == 3.0
    assert outputs["message"] == "EUR/USD: 1.05 → 1.0815 (3.0%) from 2025-03-03 to 2025-03-05"
    assert json.loads(hook.calls.last.request.content) == {"text": outputs["message"]}


@respx.mock
async def test_currency_alert_rounds_a_fall(registry: Registry) -> None:
    respx.get("https://api.frankfurter.dev/v2/rates").respond(json=_series([1.2, 1.18, 1.17999]))
    result = await run_example(registry, "currency-alert")
    outputs = result.outputs or {}
    assert outputs["change"]["pct"] == -1.67
    assert outputs["alert"] is True
    assert result.steps["notify"].status == "skipped"  # no webhook_url


@respx.mock
async def test_currency_alert_stays_quiet_on_a_small_move(registry: Registry) -> None:
    respx.get("https://api.frankfurter.dev/v2/rates").respond(json=_series([1.05, 1.051]))
    hook = respx.post("https://hooks.example.org/alert")
    result = await run_example(registry, "currency-alert", {"webhook_url": "https://hooks.example.org/alert"})
    assert (result.outputs or {})["alert"] is False
    assert result.steps["notify"].status == "skipped"
    assert not hook.called


@respx.mock
async def test_city_weather(registry: Registry) -> None:
    geocode = respx.get("https://geocoding-api.open-meteo.com/v1/search").respond(
        json=json.loads((FIXTURES / "openmeteo" / "geocode_lyon.json").read_text())
    )
    forecast = respx.get("https://api.open-meteo.com/v1/forecast").respond(
        json=json.loads((FIXTURES / "openmeteo" / "forecast_lyon.json").read_text())
    )
    result = await run_example(registry, "city-weather", {"city": "Lyon", "days": 2})
    assert failures(result) == {}
    assert dict(geocode.calls.last.request.url.params)["name"] == "Lyon"
    sent = dict(forecast.calls.last.request.url.params)
    assert (sent["latitude"], sent["longitude"], sent["forecast_days"]) == ("45.74846", "4.84671", "2")
    outputs = result.outputs or {}
    assert outputs["place"] == "Lyon, France"
    assert outputs["brief"] == "2025-03-09: 4.2 to 15.3 °C, 0.2 mm\n2025-03-10: 6.0 to 12.9 °C, 5.4 mm"
    assert outputs["now"]["temperature_2m"] == 14.2


@respx.mock
async def test_city_weather_unknown_place(registry: Registry) -> None:
    respx.get("https://geocoding-api.open-meteo.com/v1/search").respond(json={"generationtime_ms": 0.2})
    result = await run_example(registry, "city-weather", {"city": "Nowhereville"})
    assert result.status == "failed"
    assert "no place called Nowhereville" in failures(result)["unknown"]


async def test_reddit_watch_filters_the_polled_items(registry: Registry) -> None:
    items = [
        {"title": "Django 6.0 release candidate", "author": "a", "score": 5, "permalink": "https://r.test/1"},
        {"title": "Help with pandas", "author": "b", "score": 1, "permalink": "https://r.test/2"},
    ]
    result = await run_example(registry, "reddit-watch", trigger={"kind": "poll", "items": items})
    outputs = result.outputs or {}
    assert [p["title"] for p in outputs["posts"]] == ["Django 6.0 release candidate"]
    assert outputs["summary"] == "Django 6.0 release candidate by u/a (5 points): https://r.test/1"
    by_hand = await run_example(registry, "reddit-watch")
    assert (by_hand.outputs or {})["posts"] == []


@respx.mock
async def test_wiki_lookup(registry: Registry) -> None:
    respx.get("https://fr.wikipedia.org/w/api.php").respond(
        json=json.loads((FIXTURES / "wikipedia" / "search_page1.json").read_text())
    )
    summary = json.loads((FIXTURES / "wikipedia" / "summary_paris.json").read_text())
    route = respx.get(url__regex=r"^https://fr\.wikipedia\.org/api/rest_v1/page/summary/").mock(
        side_effect=lambda request: httpx.Response(
            200, json={**summary, "title": request.url.path.rsplit("/", 1)[1].replace("_", " ")}
        )
    )
    result = await run_example(registry, "wiki-lookup", {"query": "ada", "lang": "fr", "count": 2})
    assert failures(result) == {}
    assert route.call_count == 2
    pages = (result.outputs or {})["pages"]
    assert [p["title"] for p in pages] == ["Ada Lovelace", "Ada (programming language)"]
    assert pages[0]["url"] == "https://en.wikipedia.org/wiki/Paris"
