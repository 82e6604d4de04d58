"""coerce_inputs: defaults, required, types with coercion, enum, bounds, unknown inputs."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import Unprocessable
from app.pipelines.inputs import coerce_inputs, coerce_value
from app.pipelines.spec import InputSpec, PipelineSpec


def spec_with(**inputs: dict[str, Any]) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {"version": 1, "name": "p", "steps": [{"id": "a", "uses": "core.set"}], "inputs": inputs}
    )


def problems_of(spec: PipelineSpec, given: dict[str, Any], **kwargs: Any) -> list[dict[str, str]]:
    with pytest.raises(Unprocessable) as caught:
        coerce_inputs(spec, given, **kwargs)
    assert caught.value.status == 422
    details: list[dict[str, str]] = caught.value.details
    return details


@pytest.mark.parametrize(
    ("kind", "given", "expected"),
    [
        ("string", "abc", "abc"),
        ("integer", 42, 42),
        ("integer", "42", 42),
        ("integer", " -7 ", -7),
        ("integer", 3.0, 3),
        ("number", 2.5, 2.5),
        ("number", 2, 2),
        ("number", "2.5", 2.5),
        ("number", "1e3", 1000.0),
        ("number", "12", 12),
        ("boolean", True, True),
        ("boolean", "true", True),
        ("boolean", "FALSE", False),
        ("array", [1, "a"], [1, "a"]),
        ("object", {"a": 1}, {"a": 1}),
    ],
)
def test_values_are_coerced_to_their_type(kind: str, given: Any, expected: Any) -> None:
    value = coerce_inputs(spec_with(x={"type": kind}), {"x": given})["x"]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("kind", "given", "expected"),
    [
        ("boolean", "1", True),
        ("boolean", "yes", True),
        ("boolean", "off", False),
        ("array", '["a", 2]', ["a", 2]),
        ("object", '{"k": [1]}', {"k": [1]}),
        ("integer", "5", 5),
        ("array", ["already", "a list"], ["already", "a list"]),
    ],
)
def test_query_strings_allow_more_spellings(kind: str, given: Any, expected: Any) -> None:
    assert coerce_inputs(spec_with(x={"type": kind}), {"x": given}, from_strings=True) == {"x": expected}


@pytest.mark.parametrize(
    ("kind", "given", "message"),
    [
        ("string", 5, "expected text, got a number"),
        ("integer", "4.5", "expected an integer, got '4.5'"),
        ("integer", True, "expected an integer, got a boolean"),
        ("integer", 4.5, "expected an integer, got a number"),
        ("number", "1e999", "expected a finite number"),
        ("number", float("nan"), "expected a finite number"),
        ("number", False, "expected a number, got a boolean"),
        ("boolean", "yes", "expected true or false, got 'yes'"),
        ("boolean", 1, "expected true or false, got a number"),
        ("array", '["a"]', "expected a list, got text"),
        ("object", [1], "expected an object, got a list"),
    ],
)
def test_wrong_types_are_refused(kind: str, given: Any, message: str) -> None:
    expected = [{"input": "x", "message": f"`x`: {message}"}]
    assert problems_of(spec_with(x={"type": kind}), {"x": given}) == expected


def test_json_text_must_decode_to_the_type() -> None:
    spec = spec_with(x={"type": "array"})
    message = problems_of(spec, {"x": "{"}, from_strings=True)[0]["message"]
    assert message.startswith("`x`: expected a list as JSON")
    assert problems_of(spec, {"x": '{"a": 1}'}, from_strings=True)[0]["message"].endswith("got an object")


def test_defaults_required_and_missing_inputs() -> None:
    spec = spec_with(
        topic={"type": "string", "default": "python"},
        limit={"type": "integer", "default": 10},
        tags={"type": "array", "default": ["a"]},
        note={"type": "string"},
        key={"type": "string", "required": True},
    )
    result = coerce_inputs(spec, {"key": "k"})
    assert result == {"topic": "python", "limit": 10, "tags": ["a"], "note": None, "key": "k"}
    result["tags"].append("mutated")
    assert coerce_inputs(spec, {"key": "k"})["tags"] == ["a"]
    assert coerce_inputs(spec, {"key": "k", "limit": None})["limit"] == 10
    assert problems_of(spec, {}) == [{"input": "key", "message": "`key` is required"}]


def test_enum_and_bounds() -> None:
    spec = spec_with(
        level={"type": "string", "enum": ["low", "high"]},
        n={"type": "integer", "minimum": 1, "maximum": 50},
        ratio={"type": "number", "minimum": 0.5},
    )
    given = {"level": "low", "n": "50", "ratio": 0.5}
    assert coerce_inputs(spec, given) == {"level": "low", "n": 50, "ratio": 0.5}
    assert problems_of(spec, {"level": "mid", "n": 0, "ratio": 0.25}) == [
        {"input": "level", "message": '`level`: must be one of "low", "high"; got "mid"'},
        {"input": "n", "message": "`n`: must be at least 1; got 0"},
        {"input": "ratio", "message": "`ratio`: must be at least 0.5; got 0.25"},
    ]
    assert problems_of(spec, {"n": 51})[0]["message"] == "`n`: must be at most 50; got 51"


def test_every_problem_is_reported_at_once_with_unknown_inputs() -> None:
    spec = spec_with(topic={"type": "string"}, limit={"type": "integer"})
    with pytest.raises(Unprocessable) as caught:
        coerce_inputs(spec, {"topik": "x", "limit": "many", "other": 1})
    assert caught.value.message == "invalid inputs: 3 problems with the inputs"
    assert caught.value.details == [
        {"input": "topik", "message": "unknown input `topik`; did you mean `topic`?"},
        {"input": "other", "message": "unknown input `other`; this pipeline takes: limit, topic"},
        {"input": "limit", "message": "`limit`: expected an integer, got 'many'"},
    ]
    assert caught.value.to_dict()["error"]["code"] == "validation_failed"


def test_a_pipeline_without_inputs_refuses_any() -> None:
    assert problems_of(spec_with(), {"x": 1}) == [
        {"input": "x", "message": "unknown input `x`; this pipeline takes no inputs"}
    ]
    assert coerce_inputs(spec_with(), {}) == {}


def test_strict_coercion_is_for_values_written_in_the_file() -> None:
    with pytest.raises(ValueError, match="expected an integer, got text"):
        coerce_value(InputSpec(type="integer"), "42", strict=True)
    assert coerce_value(InputSpec(type="integer"), 42, strict=True) == 42
