"""Decoding a response body as JSON: orjson when it keeps every value exact, the standard library otherwise.

:func:`parse_json_body` says too whether the value came from ``orjson.loads`` as it is: such a value
holds only plain JSON types (``dict`` with ``str`` keys, ``list``, ``str``, ``int`` within 64 bits,
finite ``float``, ``bool``, ``None``), so writing it as JSON and reading it back gives an equal value
(what ``app.sdk.invoke`` relies on to hand it over without that round trip).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson

from app.sdk.errors import InvalidResponse, describe_url

# Bytes turned into this with ``bytes.translate`` hold a run of 19 "0" exactly where the original held a
# run of 19 ASCII digits (what ``re.compile(rb"\d{19}").search`` finds, ~20x faster on a long body).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19


def has_long_number(content: bytes) -> bool:
    """Whether ``content`` holds 19 ASCII digits in a row (a JSON integer orjson might not keep exact)."""
    return _NINETEEN_DIGITS in content.translate(_DIGITS_AS_ZERO)


def parse_json_body(content: bytes) -> tuple[Any, bool]:
    """The JSON value of ``content`` (None when blank), and whether orjson decoded it.

    Raises ``ValueError`` (``json.JSONDecodeError``, ``UnicodeDecodeError``) when it is not JSON.
    """
    if not content or content.isspace():  # blank (what ``not content.strip()`` says, without a copy)
        return None, False
    if not has_long_number(content):  # orjson turns integers beyond 64 bits into floats
        try:
            return orjson.loads(content), True
        except orjson.JSONDecodeError:
            pass
    return json.loads(content), False


def decode_response(response: httpx.Response) -> tuple[Any, bool]:
    """:func:`parse_json_body` of a read response; :class:`InvalidResponse` when it is not JSON."""
    content = response.content
    try:
        return parse_json_body(content)
    except ValueError as exc:
        start = content[:80].decode(response.encoding or "utf-8", "replace")
        where = f"{response.request.method} {describe_url(response.request.url)}"
        raise InvalidResponse(
            f"{where}: the response is not valid JSON ({exc}); it starts with {start!r}",
            details={"content_type": response.headers.get("content-type")},
        ) from None
