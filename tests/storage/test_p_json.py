"""The storage JSON codec's fast paths give exactly what the plain ones gave.

``loads_json`` parses with orjson when it is safe and with the stdlib parser otherwise (integers beyond 64
bits, NaN, lone surrogates...): the values, and their types, are those of ``json.loads``. ``EncodedJSON``
is bound as it is; ``cap_output`` still gives the output itself.
"""

from __future__ import annotations

import json
import math
import random

import pytest

from app.storage.repositories.runs import _capped_output, cap_output
from app.storage.types import EncodedJSON, dumps_json, loads_json

CORPUS = [
    "0",
    "-0",
    "-0.0",
    "1e5",
    "1E+2",
    "0.1",
    "123456789012345678",  # 18 digits: orjson
    "1234567890123456789",  # 19 digits: the stdlib parser
    "18446744073709551615",
    "-9223372036854775809",
    "[123456789012345678901234567890, 1]",
    '{"a": 0.1234567890123456789}',
    "NaN",
    "[Infinity, -Infinity]",
    "1e400",
    '"\\ud800"',
    '"é\\u2028 \\n"',
    '{"a": 1, "a": 2}',
    '{"nested": [[], {}, null, true, false, "x"]}',
    b'{"bytes": [1, 2]}',
    " [1 , 2 ] ",
]


def same(left: object, right: object) -> bool:
    """Equal with the same types all the way down (1 and 1.0 differ; NaN equals NaN)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        assert isinstance(right, float)
        return (math.isnan(left) and math.isnan(right)) or repr(left) == repr(right)
    if isinstance(left, list):
        assert isinstance(right, list)
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict):
        assert isinstance(right, dict)
        return list(left) == list(right) and all(same(left[key], right[key]) for key in left)
    return left == right


@pytest.mark.parametrize("text", CORPUS)
def test_loads_json_gives_what_the_stdlib_parser_gives(text: str | bytes) -> None:
    assert same(loads_json(text), json.loads(text))


def test_loads_json_on_random_documents() -> None:
    rng = random.Random(11)

    def value(depth: int) -> object:
        kind = rng.randrange(7 if depth < 3 else 5)
        if kind == 0:
            return rng.getrandbits(rng.choice([8, 40, 63, 64, 70, 100])) * rng.choice([1, -1])
        if kind == 1:
            return rng.uniform(-1e6, 1e6) * 10 ** rng.randrange(-300, 300)
        if kind == 2:
            return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(8)))
        if kind == 3:
            return rng.choice([True, False, None])
        if kind == 4:
            return rng.randrange(100)
        if kind == 5:
            return [value(depth + 1) for _ in range(rng.randrange(5))]
        return {f"k{i}": value(depth + 1) for i in range(rng.randrange(5))}

    for _ in range(300):
        document = json.dumps(value(0))
        assert same(loads_json(document), json.loads(document)), document


def test_numbers_given_by_sqlite_come_back_as_they_are() -> None:
    assert loads_json(5) == 5
    assert loads_json(2.5) == 2.5


def test_encoded_json_is_bound_as_it_is() -> None:
    text = dumps_json({"a": [1, "é"]})
    encoded = EncodedJSON(text)
    assert dumps_json(encoded) == text
    assert type(dumps_json(encoded)) is str
    assert dumps_json("plain text") == '"plain text"'  # a plain str is still a JSON string


def test_cap_output_still_gives_the_output_itself() -> None:
    output = {"items": [1, 2, 3]}
    assert cap_output(output, 1000) == (output, False)
    assert cap_output(output, 1000)[0] is output
    stored, truncated = _capped_output(output, 1000)
    assert (type(stored), truncated) == (EncodedJSON, False)
    assert loads_json(stored) == output
    capped, truncated = _capped_output(output, 5)
    assert truncated is True
    assert capped == cap_output(output, 5)[0]
