"""Durations as written in pipelines: ``500ms``, ``10s``, ``5m``, ``2h``, ``1d``, or a number of seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: str | int | float) -> float:
    """Seconds in ``value``; raises ``ValueError`` with a readable message when it is not a duration."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 500ms, 10s, 5m or 2h is expected, not a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    match = _PATTERN.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration; write it like 500ms, 10s, 5m, 2h or 1d")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]
