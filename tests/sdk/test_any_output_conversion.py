"""Outputs of operations declared `-> Any`: the orjson round trip gives exactly pydantic's JSON dump."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

import app.sdk.invoke as invoke
from app.sdk import Connector, Context

connector = Connector(key="anyout", title="Any outputs", version="1.0.0", description="Echoes its parameters")


class EchoParams(BaseModel):
    value: Any = None


@connector.action()
async def echo(ctx: Context, params: EchoParams) -> Any:
    """Give the value back."""
    return params.value


class Colour(enum.Enum):
    RED = 1
    BLUE = "blue"


class Word(str):
    pass


class Count(int):
    pass


class Model(BaseModel):
    name: str
    at: dt.datetime


@dataclasses.dataclass
class Point:
    x: int
    y: float


AT = dt.datetime(2026, 11, 26, 7, 30, 1, 123456, tzinfo=dt.UTC)
VALUES: list[Any] = [
    None,
    True,
    0,
    -(2**63),
    2**63 - 1,
    2**64,  # beyond orjson: the adapter
    1.5,
    float("nan"),
    float("inf"),
    -float("inf"),
    "é \u2028 \x00",
    [1, [2, [3, {"a": None}]]],
    {"a": {"b": [1, 2.0, "3"]}, "": False},
    (1, (2, 3)),
    [Colour.RED, Colour.BLUE],
    uuid.UUID(int=7),
    {"when": AT, "date": AT.date(), "time": AT.time(), "delta": dt.timedelta(seconds=90)},
    {1: "int key", None: "none key"},
    {"set": {3}, "frozen": frozenset()},
    b"bytes",
    bytearray(b"ab"),
    decimal.Decimal("1.10"),
    Word("sub"),
    {"count": Count(3)},
    [Model(name="m", at=AT)],
    Point(1, 2.5),
    dt.datetime(2026, 1, 1),  # naive
]


@pytest.mark.parametrize("value", VALUES, ids=[f"{i}-{type(v).__name__}" for i, v in enumerate(VALUES)])
def test_any_output_is_what_the_adapter_dumps(value: Any) -> None:
    operation = connector.operations["echo"]
    assert operation.output_type is Any
    adapter: TypeAdapter[Any] = TypeAdapter(Any)
    expected = adapter.dump_python(adapter.validate_python(value), mode="json")
    checked, dumped = invoke._convert(operation, value)
    assert checked is value
    assert repr(dumped) == repr(expected)  # repr: NaN-free, and types (list vs tuple, int vs bool) count
    assert dumped == expected


def test_plain_json_takes_the_round_trip_not_the_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    operation = connector.operations["echo"]

    class Refusing:
        def validate_python(self, value: Any) -> Any:
            raise AssertionError("the adapter is not needed for plain JSON")

        dump_python = validate_python

    monkeypatch.setattr(operation, "output_adapter", Refusing())
    value = {"items": [{"id": 1, "tags": ["a"]}], "next": None}
    assert invoke._convert(operation, value)[1] == value
