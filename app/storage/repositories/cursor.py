"""Opaque keyset-pagination cursors: URL-safe base64 of a small JSON array.

A cursor names the last row of a page (its sort key); the next page starts right after it.
Rows inserted meanwhile never shift a page, unlike ``OFFSET``.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from app.errors import BadRequest

_TIME_ID = "t"
_NAME = "n"


def _encode(payload: list[str]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(cursor: str, kind: str, size: int) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise BadRequest("invalid cursor", details={"cursor": cursor[:200]}) from None
    if (
        not isinstance(payload, list)
        or len(payload) != size + 1
        or payload[0] != kind
        or not all(isinstance(item, str) for item in payload)
    ):
        raise BadRequest("invalid cursor", details={"cursor": cursor[:200]})
    return payload[1:]


def encode_time_id(created_at: datetime, row_id: str) -> str:
    """The cursor after a row sorted by ``(created_at, id)``."""
    return _encode([_TIME_ID, created_at.astimezone(UTC).isoformat(), row_id])


def decode_time_id(cursor: str) -> tuple[datetime, str]:
    """``(created_at, id)`` from :func:`encode_time_id`; :class:`BadRequest` when malformed."""
    stamp, row_id = _decode(cursor, _TIME_ID, 2)
    try:
        created_at = datetime.fromisoformat(stamp)
    except ValueError:
        raise BadRequest("invalid cursor", details={"cursor": cursor[:200]}) from None
    if created_at.tzinfo is None:
        raise BadRequest("invalid cursor", details={"cursor": cursor[:200]})
    return created_at, row_id


def encode_name(name: str) -> str:
    """The cursor after a row sorted by name."""
    return _encode([_NAME, name])


def decode_name(cursor: str) -> str:
    """The name from :func:`encode_name`; :class:`BadRequest` when malformed."""
    return _decode(cursor, _NAME, 1)[0]


def check_limit(limit: int, maximum: int) -> int:
    """``limit`` if it is within ``1..maximum``, else :class:`BadRequest`."""
    if not 1 <= limit <= maximum:
        raise BadRequest(f"limit must be between 1 and {maximum}", details={"limit": limit})
    return limit
