"""Task R2: decode_json's long-number check, case-insensitive header merging.

The long-number check is compared with the regex it replaces (differential test).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from app.sdk.context import decode_json, has_long_number
from app.sdk.http import ConnectorHTTP, build_http_client, merge_headers
from app.sdk.testing import settings_for_tests

# -- the long-number check of decode_json -----------------------------------------------------------------

_REGEX = re.compile(rb"\d{19}")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[1,2,3]",
        b"123456789012345678",  # 18 digits
        b"1234567890123456789",  # 19
        b"[0000000000000000000]",
        b"-9999999999999999999.5",
        b'{"a":"12345678901234567890"}',
        b"12345678901234567\xd9\xa0\xd9\xa1",  # non-ASCII digits are not \d in a bytes pattern
        b"123456789 0123456789",
        bytes(range(256)) * 3,
    ],
)
def test_has_long_number_agrees_with_the_regex(body: bytes) -> None:
    assert has_long_number(body) is bool(_REGEX.search(body))


@pytest.mark.parametrize(
    "body",
    [b"[18446744073709551615, 18446744073709551616]", b'{"id": 123456789012345678901234}', b"[1, 2.5]"],
)
def test_decode_json_keeps_big_integers_exact(body: bytes) -> None:
    request = httpx.Request("GET", "https://api.test/x")
    response = httpx.Response(200, content=body, request=request)
    decoded = decode_json(response)
    assert decoded == json.loads(body)
    assert [type(v) for v in (decoded if isinstance(decoded, list) else decoded.values())] == [
        type(v) for v in (json.loads(body) if isinstance(decoded, list) else json.loads(body).values())
    ]


# -- case-insensitive header merging --------------------------------------------------------------------


def test_merge_headers_replaces_a_name_whatever_its_case() -> None:
    base = {"Accept": "text/plain", "X-A": "1"}
    assert merge_headers(base, {"accept": "application/json"}) == {"X-A": "1", "accept": "application/json"}
    assert merge_headers(base, [(b"x-a", b"2")]) == {"Accept": "text/plain", b"x-a": b"2"}
    assert merge_headers({}, {"A": "1", "a": "2"}) == {"a": "2"}
    assert merge_headers(base, httpx.Headers({"X-B": "3"})) == {**base, "x-b": "3"}
    assert base == {"Accept": "text/plain", "X-A": "1"}  # not changed


async def test_a_connector_header_and_a_request_header_are_sent_once() -> None:
    async with build_http_client(settings_for_tests()) as client:
        defaults = {"accept": "text/csv", "X-Key": "k"}
        http = ConnectorHTTP(client, base_url="https://api.test/v1", headers=defaults)
        request = http.build_request("GET", "x", headers={"Accept": "application/json", "x-key": "j"})
        no_extra = http.build_request("GET", "x")
    assert request.headers.get_list("accept") == ["application/json"]
    assert request.headers.get_list("x-key") == ["j"]
    assert no_extra.headers.get_list("accept") == ["text/csv"]  # replaces the client's default */*


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://api.test/v1", "https://api.test/v1/items?a=1"),
        ("https://api.test/v1/", "https://api.test/v1/items?a=1"),
        ("https://api.test", "https://api.test/items?a=1"),
    ],
)
async def test_base_urls_are_parsed_once_and_end_with_a_slash(base: str, expected: str) -> None:
    async with build_http_client(settings_for_tests()) as client:
        first = ConnectorHTTP(client, base_url=base)
        second = ConnectorHTTP(client, base_url=base)
    assert first.base_url is second.base_url
    assert first.base_url is not None
    assert first.base_url.raw_path.endswith(b"/")
    assert str(first.resolve_url("items?a=1")) == expected


async def test_an_invalid_base_url_still_raises() -> None:
    async with build_http_client(settings_for_tests()) as client:
        with pytest.raises(httpx.InvalidURL):
            ConnectorHTTP(client, base_url="https://api.test:port/")


@pytest.mark.parametrize("method", ["get", "HEAD", "options", "DELETE", "post", "put", "patch"])
@pytest.mark.parametrize(
    "headers",
    [None, {"Accept": "application/json"}, {"host": "other.test"}, [("X-A", "1"), ("x-a", "2")]],
    ids=["none", "accept", "host", "pairs"],
)
async def test_requests_without_body_are_built_as_the_client_builds_them(method: str, headers: Any) -> None:
    async with build_http_client(settings_for_tests()) as client:
        http = ConnectorHTTP(client, base_url="https://api.test:8443/v1", headers={"X-Conn": "c"})
        built = http.build_request(method, "items?a=1", params={"b": "2"}, headers=headers)
        target = http.resolve_url("items?a=1").copy_merge_params({"b": "2"})
        merged = merge_headers(http.headers, headers or {})
        expected = client.build_request(method.upper(), target, headers=merged)
    assert (built.method, built.url) == (expected.method, expected.url)
    assert built.headers.multi_items() == expected.headers.multi_items()
    assert built.headers.raw == expected.headers.raw  # names as written, in the same order
    assert built.extensions == expected.extensions
    assert built.content == expected.content
    assert isinstance(built.stream, httpx.ByteStream)
    assert isinstance(expected.stream, httpx.ByteStream)
    assert b"".join(built.stream) == b"".join(expected.stream)
