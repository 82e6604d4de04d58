"""Expressions: the Mashpipe functions, default() on missing keys, templates, syntax errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.errors import ExpressionError
from app.pipelines.expressions import (
    ExpressionSyntaxError,
    Scope,
    compile_expression,
    compile_value,
    to_json_value,
)

DATA: dict[str, Any] = {
    "inputs": {"name": "  Ada  ", "tags": ["a", "b", None, 3], "payload": '{"k": [1, 2]}', "n": None},
    "steps": {
        "hn": {"output": {"items": [{"title": "One", "score": 3}], "meta": None}, "status": "succeeded"},
        "off": {"output": None, "status": "skipped"},
    },
    "trigger": {"kind": "manual"},
}


def ev(source: str, **extra: Any) -> Any:
    return compile_expression(source).evaluate(Scope({**DATA, **extra}))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("lower('HeLLo')", "hello"),
        ("upper(inputs.name)", "  ADA  "),
        ("trim(inputs.name)", "Ada"),
        ("lower(inputs.n)", ""),
        ("trim(null)", ""),
        ("join(['a', 'b'], '-')", "a-b"),
        ("join(inputs.tags, '+')", "a+b++3"),
        ("join(['x', 'y'])", "x,y"),
        ("json(inputs.payload).k[1]", 2),
        ("json('[1, 2]')", [1, 2]),
        ("default(inputs.n, 'fallback')", "fallback"),
        ("default(inputs.name, 'fallback')", "  Ada  "),
        ("string(timestamp('2024-05-01T10:00:00Z'))", "2024-05-01T10:00:00+00:00"),
        ("timestamp(0) == timestamp('1970-01-01T00:00:00Z')", True),
        ("timestamp(1700000000.5) > timestamp(1700000000)", True),
        ("now() > timestamp('2020-01-01T00:00:00Z')", True),
        ("'abc'.matches('^a.c$')", True),
        ("size(steps.hn.output.items)", 1),
    ],
)
def test_mashpipe_functions(source: str, expected: Any) -> None:
    assert ev(source) == expected


def test_now_is_an_aware_utc_timestamp() -> None:
    value = ev("now()")
    assert isinstance(value, datetime)
    assert value.tzinfo is not None
    assert to_json_value(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2024-01-02T03:04:05Z"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("default(steps.hn.output.items[0].title, 'none')", "One"),
        ("default(steps.hn.output.items[5].title, 'none')", "none"),
        ("default(steps.hn.output.missing.deeper, 'none')", "none"),
        ("default(steps.hn.output.meta.x, 'none')", "none"),
        ("default(steps.off.output.items, [])", []),
        ("default(steps.nope.output, 0)", 0),
        ("default(trigger.body.issue.title, 'untitled')", "untitled"),
        ("default(steps.hn.output.items[0].title.nope, 1)", 1),
        ("default(steps.hn.output['items'][0]['score'], 0) + 1", 4),
        ("default(inputs.tags[inputs.n], 'x')", "x"),
        ("default(steps.hn.output.items[default(inputs.idx, 0)].score, -1)", 3),
        ("default(trigger.a, default(trigger.b, 'c'))", "c"),
        ("size(default(trigger.items, []))", 0),
        ("default(item.x, 'none')", "none"),
    ],
)
def test_default_gives_the_fallback_for_missing_keys(source: str, expected: Any) -> None:
    assert ev(source, item={}) == expected


def test_default_of_a_missing_variable_is_still_an_error() -> None:
    with pytest.raises(ExpressionError):
        compile_expression("default(nothing.here, 1)").evaluate(Scope({}))


def test_a_missing_key_without_default_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match=r"steps\.hn\.output\.missing"):
        ev("steps.hn.output.missing.deeper")


def test_expression_keeps_its_source_and_reads_its_references() -> None:
    expr = compile_expression("  default(steps.a.output.x, inputs.y) && secrets.K != '' ")
    assert expr.source == "default(steps.a.output.x, inputs.y) && secrets.K != ''"
    assert expr.step_refs() == {"a"}
    assert expr.input_refs() == {"y"}
    assert expr.secret_refs() == {"K"}
    assert expr.roots() == {"steps", "inputs", "secrets"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("${{ steps.hn.output.items }}", [{"title": "One", "score": 3}]),
        ("  ${{ 1 + 1 }}  ", 2),
        ("n=${{ 1 + 1 }}", "n=2"),
        ("${{ true }} and ${{ null }} and ${{ [1, 'a'] }}", 'true and  and [1,"a"]'),
        ('${{ "}}" }}', "}}"),
        ("${{ {'a': {'b': 1}}.a }}", {"b": 1}),
        ("plain text", "plain text"),
        ({"list": ["${{ 2 * 3 }}", 7], "text": "x"}, {"list": [6, 7], "text": "x"}),
    ],
)
def test_templates_give_native_values_or_interpolate(raw: Any, expected: Any) -> None:
    assert compile_value(raw).evaluate(Scope(DATA)) == expected


def test_values_from_data_are_never_evaluated_again() -> None:
    value = compile_value("${{ inputs.code }}")
    assert value.evaluate(Scope({"inputs": {"code": "${{ 1 + 1 }}"}})) == "${{ 1 + 1 }}"


def test_compiled_value_lists_its_step_references() -> None:
    value = compile_value({"a": "${{ steps.x.output }}", "b": ["${{ steps['y'].status }} ${{ 'steps.z' }}"]})
    assert value.step_refs() == {"x", "y"}
    assert not value.is_static
    assert compile_value({"a": 1}).is_static


@pytest.mark.parametrize(
    ("raw", "offset", "message"),
    [
        ("x ${{ 1 + }}", 9, "the expression ends too early"),
        ("${{  a b }}", 7, "unexpected `b` after the end"),
        ("${{ (a }}", 6, "missing `)` at the end"),
        ("${{ 'open }}", 4, "unclosed string"),
        ("a ${{ x", 2, "unclosed `${{`: close it with `}}`"),
        ("${{   }}", 3, "empty expression"),
        ("${{\n  1 +\n  2 + }}", 15, "the expression ends too early"),
        ("${{ a ; b }}", 6, "unexpected character `;`"),
    ],
)
def test_syntax_errors_point_inside_the_field(raw: str, offset: int, message: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_value(raw)
    assert caught.value.offset == offset
    assert caught.value.message == message
    assert caught.value.source == raw


def test_bare_expression_limits() -> None:
    with pytest.raises(ExpressionSyntaxError, match="characters long"):
        compile_expression("1 + " * 2000 + "1")
    with pytest.raises(ExpressionSyntaxError, match="nests deeper"):
        compile_expression("(" * 70 + "1" + ")" * 70)
