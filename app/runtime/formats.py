"""How a published endpoint serves a run's ``outputs``: JSON, RSS 2.0 or CSV.

* JSON: the ``outputs`` object, compact UTF-8 (orjson).
* RSS 2.0: the items of the FIRST output (in declared order) that is a list. Each item maps to an
  ``<item>``: ``title`` (or ``name``), ``link`` from ``url`` (or ``link``), ``description`` (or
  ``summary``, ``content``, ``text``), ``pubDate`` from ``pubDate``/``published``/``date``/
  ``created_at``/``updated``/``time`` (RFC 3339 text, RFC 822 text or epoch seconds, written as RFC
  822), ``guid`` from ``guid``/``id`` or the link (``isPermaLink`` only when it is the link). The
  channel is the pipeline's name and description, linked to the endpoint's URL.
* CSV: the first list output, one row per item; the header is every key in first-seen order (items
  that are not objects are one ``value`` column). Nested values are JSON, null is empty, and text that
  a spreadsheet would run as a formula (starting with ``= + - @``, tab or CR) gets a leading ``'``.

A format that needs a list output raises :class:`EndpointOutputInvalid` (502) when there is none.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import orjson

from app.errors import MashpipeError
from app.storage.types import dumps_json_bytes

MEDIA_TYPES = {
    "json": "application/json",
    "rss": "application/rss+xml; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
}
TITLE_KEYS = ("title", "name")
LINK_KEYS = ("url", "link")
DESCRIPTION_KEYS = ("description", "summary", "content", "text")
DATE_KEYS = ("pubDate", "published", "published_at", "date", "created_at", "updated", "updated_at", "time")
GUID_KEYS = ("guid", "id")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class EndpointOutputInvalid(MashpipeError):
    """502: the run's outputs cannot be served in the endpoint's format (no list to serve)."""

    status = 502
    code = "endpoint_output_invalid"


def render(
    fmt: str, outputs: Mapping[str, Any], *, title: str, description: str | None, link: str
) -> tuple[bytes, str]:
    """``(body, media type)`` of ``outputs`` in format ``fmt`` (json, rss or csv)."""
    if fmt == "rss":
        return render_rss(first_list(outputs, fmt), title=title, description=description, link=link), (
            MEDIA_TYPES["rss"]
        )
    if fmt == "csv":
        return render_csv(first_list(outputs, fmt)), MEDIA_TYPES["csv"]
    return dumps_json_bytes(dict(outputs)), MEDIA_TYPES["json"]


def first_list(outputs: Mapping[str, Any], fmt: str) -> list[Any]:
    """The first output that is a list."""
    for value in outputs.values():
        if isinstance(value, list):
            return value
    raise EndpointOutputInvalid(
        f"the pipeline's outputs hold no list to serve as {fmt.upper()}: give it an output that is a "
        "list of items",
        details={"outputs": sorted(outputs)},
    )


def _pick(item: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = item.get(key)
        if value is not None and value != "":
            return value
    return None


def _text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    return _XML_INVALID.sub("", text)


def rfc822(value: Any) -> str | None:
    """A date as RFC 822 text (RSS ``pubDate``), from RFC 3339/ISO text, RFC 822 text or epoch seconds."""
    moment: datetime | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 100_000_000_000 else value  # milliseconds
        try:
            moment = datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            try:
                moment = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _sub(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    element.text = text
    return element


def render_rss(items: list[Any], *, title: str, description: str | None, link: str) -> bytes:
    """An RSS 2.0 document of ``items`` (see the module docstring for the item fields)."""
    rss = ET.Element("rss", {"version": "2.0", "xmlns:atom": "http://www.w3.org/2005/Atom"})
    channel = ET.SubElement(rss, "channel")
    _sub(channel, "title", _text(title))
    _sub(channel, "link", _text(link))
    _sub(channel, "description", _text(description or title))
    ET.SubElement(channel, "atom:link", {"href": _text(link), "rel": "self", "type": "application/rss+xml"})
    _sub(channel, "generator", "Mashpipe")
    for raw in items:
        item = raw if isinstance(raw, Mapping) else {"title": raw}
        element = ET.SubElement(channel, "item")
        item_title = _pick(item, TITLE_KEYS)
        item_link = _pick(item, LINK_KEYS)
        item_description = _pick(item, DESCRIPTION_KEYS)
        if item_title is not None:
            _sub(element, "title", _text(item_title))
        if item_link is not None:
            _sub(element, "link", _text(item_link))
        if item_description is not None or item_title is None:
            _sub(element, "description", _text(item_description if item_description is not None else ""))
        date = rfc822(_pick(item, DATE_KEYS))
        if date is not None:
            _sub(element, "pubDate", date)
        guid = _pick(item, GUID_KEYS)
        if guid is not None:
            permalink = "true" if item_link is not None and _text(guid) == _text(item_link) else "false"
            _sub(element, "guid", _text(guid), isPermaLink=permalink)
        elif item_link is not None:
            _sub(element, "guid", _text(item_link), isPermaLink="true")
    body: bytes = ET.tostring(rss, encoding="utf-8", xml_declaration=True)
    return body


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def render_csv(items: list[Any]) -> bytes:
    """CSV (RFC 4180, CRLF line ends) of ``items``, with a header row."""
    columns: dict[str, None] = {}
    for item in items:
        if isinstance(item, Mapping):
            for key in item:
                columns.setdefault(str(key), None)
        else:
            columns.setdefault("value", None)
    header = list(columns)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for item in items:
        row = {str(k): v for k, v in item.items()} if isinstance(item, Mapping) else {"value": item}
        writer.writerow([_cell(row.get(column)) for column in header])
    return out.getvalue().encode("utf-8")
