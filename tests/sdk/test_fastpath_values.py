"""Task R2: plain-JSON outputs kept as they are, the long-number check, case-insensitive header merging.

Each shortcut is checked against the general path it replaces (differential tests).
"""

from __future__ import annotations

import datetime
import enum
import json
import re
from collections import OrderedDict
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, JsonValue, TypeAdapter, ValidationError

from app.errors import StepError
from app.sdk import Connector, Context
from app.sdk.context import decode_json, has_long_number
from app.sdk.http import ConnectorHTTP, build_http_client, merge_headers
from app.sdk.invoke import CallOptions, _convert, invoke_action
from app.sdk.jsonvalues import is_plain_json, output_shape, passes_unchanged
from app.sdk.testing import settings_for_tests


class Color(enum.IntEnum):
    RED = 1


class Item(BaseModel):
    id: int
    name: str


PLAIN: list[Any] = [
    None,
    True,
    0,
    -5,
    2**70,
    1.5,
    "x\ud800",
    [],
    {},
    [{"a": [1, 2.5, None, {"b": "c"}]}, {"d": False}],
    {"nested": {"list": [1, "two", [3.0]]}},
]
NOT_PLAIN: list[Any] = [
    float("nan"),
    float("inf"),
    [float("-inf")],
    (1, 2),
    {1: "int key"},
    {"when": datetime.date(2024, 1, 2)},
    [Color.RED],
    OrderedDict(a=1),
    {"model": Item(id=1, name="x")},
    {"set": {1, 2}},
    b"bytes",
]
DECLARED: list[Any] = [
    Any,
    JsonValue,
    dict[str, Any],
    list[Any],
    list[dict[str, Any]],
    dict[str, JsonValue],
    list[JsonValue],
]


def _general(annotation: Any, value: Any) -> Any:
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    return adapter.dump_python(adapter.validate_python(value), mode="json")


@pytest.mark.parametrize("value", PLAIN + NOT_PLAIN, ids=repr)
def test_is_plain_json(value: Any) -> None:
    assert is_plain_json(value) is (any(value is plain for plain in PLAIN))


@pytest.mark.parametrize("annotation", DECLARED, ids=str)
@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_values_pass_unchanged_only_where_the_adapter_gives_them_back_equal(
    annotation: Any, value: Any
) -> None:
    if annotation in (Any, JsonValue):
        assert passes_unchanged(annotation, value)
    if passes_unchanged(annotation, value):
        assert _general(annotation, value) == value
    else:  # the shape does not fit: the adapter refuses it, or changes it
        with pytest.raises(ValidationError, match="validation error"):
            _general(annotation, value)


@pytest.mark.parametrize("annotation", DECLARED, ids=str)
@pytest.mark.parametrize("value", NOT_PLAIN, ids=repr)
def test_other_values_always_go_through_the_adapter(annotation: Any, value: Any) -> None:
    assert not passes_unchanged(annotation, value)


@pytest.mark.parametrize("annotation", DECLARED, ids=str)
def test_every_any_json_type_has_a_shape(annotation: Any) -> None:
    assert output_shape(annotation) is not None


@pytest.mark.parametrize(
    "annotation", [Item, list[Item], dict[str, int], list[int], int, str, dict[int, Any], Any | None]
)
def test_typed_outputs_have_no_shortcut(annotation: Any) -> None:
    assert output_shape(annotation) is None
    assert not passes_unchanged(annotation, [1, 2])


def test_shapes_are_checked_before_the_values() -> None:
    assert not passes_unchanged(dict[str, Any], [1])
    assert not passes_unchanged(list[Any], {"a": 1})
    assert not passes_unchanged(list[dict[str, Any]], [{"a": 1}, 2])
    assert passes_unchanged(list[dict[str, Any]], [{"a": 1}, {"b": [2]}])


def test_deep_nesting_falls_back_to_the_adapter() -> None:
    value: Any = 1
    for _ in range(5000):
        value = [value]
    assert not passes_unchanged(Any, value)


demo = Connector(key="r2demo", version="1.0.0", title="R2 demo", description="outputs")


class Empty(BaseModel):
    pass


@demo.action()
async def anything(ctx: Context, params: Empty) -> Any:
    """Returns whatever the test put in ``RESULT``."""
    return RESULT[0]


@demo.action()
async def objects(ctx: Context, params: Empty) -> list[dict[str, Any]]:
    """Returns whatever the test put in ``RESULT``."""
    value: list[dict[str, Any]] = RESULT[0]
    return value


@demo.action()
async def items(ctx: Context, params: Empty) -> list[Item]:
    """Returns whatever the test put in ``RESULT``."""
    value: list[Item] = RESULT[0]
    return value


RESULT: list[Any] = [None]


@pytest.mark.parametrize("name", ["anything", "objects", "items"])
@pytest.mark.parametrize(
    "value",
    [
        [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        [{"id": 1, "name": "a", "when": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)}],
        [{"id": 1.0, "name": "a", "x": float("nan")}],
        [{"id": "7", "name": "a"}],
        ({"id": 1, "name": "a"},),
        [{"id": Color.RED, "name": "a"}],
    ],
    ids=["plain", "datetime", "nan", "coerced", "tuple", "enum"],
)
async def test_invoke_gives_what_the_adapter_gives(name: str, value: Any) -> None:
    operation = demo.operations[name]
    RESULT[0] = value
    try:
        expected: Any = operation.output_adapter.dump_python(
            operation.output_adapter.validate_python(value), mode="json"
        )
    except Exception:
        expected = StepError
    async with build_http_client(settings_for_tests()) as client:
        if expected is StepError:
            with pytest.raises(StepError, match=r"does not match|not JSON") as caught:
                await invoke_action(demo, operation, {}, CallOptions(http_client=client))
            assert caught.value.code == "invalid_output"
            return
        got = await invoke_action(demo, operation, {}, CallOptions(http_client=client))
    assert got == expected or (json.dumps(got) == json.dumps(expected))  # NaN: compared as JSON text
    converted = _convert(operation, value)[1]
    assert converted == got or json.dumps(converted) == json.dumps(got)


async def test_plain_output_of_an_any_action_is_returned_as_is() -> None:
    value = [{"id": 1, "name": "a", "tags": ["x"]}]
    RESULT[0] = value
    async with build_http_client(settings_for_tests()) as client:
        got = await invoke_action(demo, demo.operations["anything"], {}, CallOptions(http_client=client))
    assert got is value  # no copy made: nothing to convert


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
