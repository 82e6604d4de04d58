"""Ordering and identity of JSON values, for sort, unique, group, count and join.

Sorting never fails on mixed types: values are ordered by kind first — booleans, numbers, strings,
timestamps, durations, lists and objects (by their canonical JSON text) — and null (or NaN) is
always last, whatever the order. Identity: ``1`` and ``1.0`` are the same key, ``true`` and ``1``
are not; lists and objects are equal when their canonical JSON is.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

from app.pipelines.expressions import to_json_value


def _canonical(value: Any) -> str:
    return json.dumps(to_json_value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def is_missing(value: Any) -> bool:
    """Null and NaN sort last."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def sort_key(value: Any) -> tuple[int, Any]:
    """A key ordering any non-missing value (see the module docstring)."""
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (3, aware.timestamp())
    if isinstance(value, date):
        return (3, datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())
    if isinstance(value, timedelta):
        return (4, value.total_seconds())
    if isinstance(value, list | tuple):
        return (5, _canonical(value))
    return (6, _canonical(value))


def hash_key(value: Any) -> Any:
    """A hashable identity of a value (see the module docstring)."""
    if value is None:
        return (0, None)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float | str):
        return (2, value)
    return (3, _canonical(value))
