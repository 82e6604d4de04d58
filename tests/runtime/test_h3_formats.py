"""Rendering a run's outputs as JSON, RSS 2.0 and CSV."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET

import pytest

from app.runtime.formats import EndpointOutputInvalid, first_list, render, render_csv, render_rss, rfc822


def rss_items(body: bytes) -> list[ET.Element]:
    channel = ET.fromstring(body).find("channel")
    assert channel is not None
    return channel.findall("item")


def test_json_keeps_the_outputs_object() -> None:
    body, media_type = render("json", {"a": [1, 2], "b": None}, title="t", description=None, link="http://x")
    assert media_type == "application/json"
    assert json.loads(body) == {"a": [1, 2], "b": None}


def test_the_first_list_output_in_declared_order_is_served() -> None:
    assert first_list({"count": 3, "later": [2], "items": [1]}, "rss") == [2]
    with pytest.raises(EndpointOutputInvalid) as caught:
        first_list({"count": 3}, "csv")
    assert caught.value.status == 502
    assert "CSV" in caught.value.message


def test_rss_items_map_common_field_names() -> None:
    items = [
        {
            "name": "By name",
            "link": "https://a.example/1",
            "summary": "<b>bold</b> & more",
            "date": "2024-03-01T10:00:00Z",
            "guid": "https://a.example/1",
        },
        {"title": "No link", "content": {"nested": True}, "created_at": "Fri, 01 Mar 2024 12:00:00 +0100"},
        "just text",
    ]
    body = render_rss(items, title="feed & co", description=None, link="http://host/v1/apps/a/b?x=1&y=2")
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    channel = ET.fromstring(body).find("channel")
    assert channel is not None
    assert channel.findtext("title") == "feed & co"
    assert channel.findtext("description") == "feed & co"  # no description: the title
    assert channel.findtext("link") == "http://host/v1/apps/a/b?x=1&y=2"
    first, second, third = channel.findall("item")
    assert first.findtext("title") == "By name"
    assert first.findtext("link") == "https://a.example/1"
    assert first.findtext("description") == "<b>bold</b> & more"  # escaped in the XML, intact once parsed
    assert first.findtext("pubDate") == "Fri, 01 Mar 2024 10:00:00 GMT"
    assert first.find("guid").attrib["isPermaLink"] == "true"  # type: ignore[union-attr]
    assert second.findtext("link") is None
    assert second.findtext("description") == '{"nested":true}'
    assert second.findtext("pubDate") == "Fri, 01 Mar 2024 11:00:00 GMT"
    assert second.find("guid") is None
    assert third.findtext("title") == "just text"


def test_rss_strips_characters_xml_cannot_carry() -> None:
    body = render_rss(
        [{"title": "bell\x07 and nul\x00", "url": "https://a.example"}], title="t", description="d", link="l"
    )
    [item] = rss_items(body)
    assert item.findtext("title") == "bell and nul"
    assert item.findtext("guid") == "https://a.example"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (1_700_000_000_000, "Tue, 14 Nov 2023 22:13:20 GMT"),  # milliseconds
        ("2023-11-14T22:13:20+01:00", "Tue, 14 Nov 2023 21:13:20 GMT"),
        ("2023-11-14", "Tue, 14 Nov 2023 00:00:00 GMT"),
        ("Tue, 14 Nov 2023 22:13:20 GMT", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ("not a date", None),
        (True, None),
        (None, None),
        (10**20, None),
    ],
)
def test_rfc822_dates(value: object, expected: str | None) -> None:
    assert rfc822(value) == expected


def test_csv_header_is_every_key_in_first_seen_order() -> None:
    body = render_csv([{"a": 1, "b": "x"}, {"b": "y", "c": [1, 2]}, {"a": None, "d": True}])
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows == [["a", "b", "c", "d"], ["1", "x", "", ""], ["", "y", "[1,2]", ""], ["", "", "", "true"]]


def test_csv_quotes_and_defuses_formulas() -> None:
    body = render_csv(
        [{"text": 'say "hi", then\nleave', "formula": '=HYPERLINK("x")', "negative": -5, "at": "@me"}]
    )
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[1] == ['say "hi", then\nleave', '\'=HYPERLINK("x")', "-5", "'@me"]


def test_csv_of_scalars_is_one_value_column() -> None:
    assert render_csv([1, "two"]) == b"value\r\n1\r\ntwo\r\n"
    assert render_csv([]) == b"\r\n"
