"""parse_json_body: blank bodies, orjson when it keeps every value exact, the standard library otherwise."""

from __future__ import annotations

import pytest

from app.sdk.json_body import has_long_number, parse_json_body


@pytest.mark.parametrize("blank", [b"", b" ", b"\n", b" \t\r\n\x0b\x0c "])
def test_a_blank_body_is_none(blank: bytes) -> None:
    assert parse_json_body(blank) == (None, False)


@pytest.mark.parametrize("text", [b"\xa0", b"\x1c", b"\x85"])
def test_bytes_that_are_not_ascii_whitespace_are_not_blank(text: bytes) -> None:
    with pytest.raises(ValueError, match=r"Expecting value|can't decode"):
        parse_json_body(text)


def test_plain_json_is_decoded_by_orjson() -> None:
    assert parse_json_body(b' {"a": [1, 2.5, "x", null]} ') == ({"a": [1, 2.5, "x", None]}, True)


def test_an_integer_beyond_64_bits_stays_exact() -> None:
    value, from_orjson = parse_json_body(b'{"big": 123456789012345678901234567890}')
    assert value == {"big": 123456789012345678901234567890}
    assert from_orjson is False
    assert has_long_number(b"1234567890123456789")
    assert not has_long_number(b"123456789012345678 1")
