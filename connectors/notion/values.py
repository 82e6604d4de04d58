"""Notion property values as plain JSON: what a pipeline wants from a database row.

========================  ======================================================
property type             plain value
========================  ======================================================
title, rich_text          the concatenated plain text
number, checkbox          the number, the boolean
url, email, phone_number  the string
select, status            the option's name (null when empty)
multi_select              the list of option names
date                      the start (ISO text); ``{start, end}`` for a range
people                    the names (ids when a person has no name)
relation                  the related page ids
files                     the file URLs
formula                   the formula's result, converted the same way
rollup                    the number, date or list of converted values
created_time & co         the timestamp or the user's name
unique_id                 ``PREFIX-42`` (or ``42`` without a prefix)
========================  ======================================================

Unknown types are passed through as the raw value of their type key.
"""

from __future__ import annotations

from typing import Any


def _text(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return "".join(str(part.get("plain_text", "")) for part in parts if isinstance(part, dict))


def _name(value: Any) -> Any:
    return value.get("name") if isinstance(value, dict) else None


def _date(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    if value.get("end"):
        return {"start": value.get("start"), "end": value.get("end")}
    return value.get("start")


def _person(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    return value.get("name") or value.get("id")


def _file(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    inner = value.get(kind) if isinstance(kind, str) else None
    return inner.get("url") if isinstance(inner, dict) else value.get("name")


def plain_value(prop: Any) -> Any:
    """The plain JSON value of one Notion property value object (``{"type": ..., TYPE: ...}``)."""
    if not isinstance(prop, dict):
        return prop
    kind = prop.get("type")
    if not isinstance(kind, str):
        return None
    value = prop.get(kind)
    if kind in ("title", "rich_text"):
        return _text(value)
    if kind in ("select", "status"):
        return _name(value)
    if kind == "multi_select":
        return [_name(option) for option in value or []]
    if kind == "date":
        return _date(value)
    if kind == "people":
        return [_person(person) for person in value or []]
    if kind in ("created_by", "last_edited_by"):
        return _person(value)
    if kind == "relation":
        return [item.get("id") for item in value or [] if isinstance(item, dict)]
    if kind == "files":
        return [_file(item) for item in value or []]
    if kind == "formula":
        return plain_value(value)
    if kind == "rollup":
        if isinstance(value, dict) and value.get("type") == "array":
            return [plain_value(item) for item in value.get("array") or []]
        return plain_value(value)
    if kind == "unique_id" and isinstance(value, dict):
        prefix, number = value.get("prefix"), value.get("number")
        return f"{prefix}-{number}" if prefix else number
    return value


def plain_values(properties: dict[str, Any]) -> dict[str, Any]:
    """Every property of a page as plain JSON, by property name."""
    return {name: plain_value(prop) for name, prop in properties.items()}
