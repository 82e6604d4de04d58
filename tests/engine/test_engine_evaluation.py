"""The evaluation shortcuts (pure paths, projections, the variable resolver) agree with plain CEL."""

from __future__ import annotations

import pytest

from app.engine.evaluation import Evaluator
from app.engine.paths import analyze, project
from app.engine.values import ValueTemplate
from app.errors import ExpressionError
from app.pipelines.expressions import Scope, compile_expression


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ("steps.hn.output", ("steps", ("hn", "output"))),
        ("item", ("item", ())),
        ("index", ("index", ())),
        ('item["a b"].c', ("item", ("a b", "c"))),
        ("  inputs . limit ", ("inputs", ("limit",))),
        ("item.title.size()", None),
        ("item[0]", None),
        ("item.a + 1", None),
        ("size(item)", None),
        ("'item.a'", None),
        ("item.?a", None),
    ],
)
def test_pure_paths(source, path):
    assert analyze(source).path == path


@pytest.mark.parametrize(
    ("source", "projections"),
    [
        ("item.score > 3 && item.title.contains('x')", {"item": {"score": None, "title": None}}),
        ("item.user.login == inputs.who", {"item": {"user": {"login": None}}, "inputs": {"who": None}}),
        ("item.user.login == '' || item.user != null", {"item": {"user": None}}),
        ("size(item) > 0 && item.a == 1", {"item": None}),
        ("item.tags.exists(t, t == 'x')", {"item": {"tags": None}}),
        ("inputs.xs.exists(item, item > 1)", {"inputs": {"xs": None}, "item": None}),
        ("has(item.a.b) // item alone in a comment", {"item": {"a": {"b": None}}}),
        ('"item.secret" + item.name', {"item": {"name": None}}),
        ("steps.a.output[0].x", {"steps": {"a": {"output": None}}}),
    ],
)
def test_projections(source, projections):
    assert analyze(source).projections == projections


def test_project_keeps_missing_keys_missing():
    value = {"a": 1, "b": {"c": 2, "d": 3}, "e": "x"}
    assert project(value, {"b": {"c": None}, "z": None}) == {"b": {"c": 2}}
    assert project(value, {"e": {"f": None}}) == {"e": "x"}
    assert project("text", {"a": None}) == "text"
    assert project(value, None) is value


ITEMS = [
    {"title": "Python tips", "score": 120, "user": {"login": "ann", "karma": 5}, "tags": ["py", "tips"]},
    {"title": "Rust", "score": 80, "user": {"login": "bob", "karma": 50}, "tags": []},
    {"title": "python again", "score": 300, "user": {"login": "cy"}, "tags": ["py"], "extra": None},
]
VARIABLES = {"inputs": {"min": 100, "topic": "python", "who": "bob"}, "steps": {"a": {"output": [1, 2, 3]}}}
EXPRESSIONS = [
    "item.score >= inputs.min && lower(item.title).contains(inputs.topic)",
    "item.user.login == inputs.who || size(item.tags) > 1",
    "has(item.user.karma) ? item.user.karma : -1",
    "default(item.extra, 'none')",
    "item.tags.exists(t, t == 'py')",
    "index * 10 + size(steps.a.output)",
    "steps.a.output.exists(item, item == 2)",
    "{'t': item.title, 'i': index}",
    "[item.score, item.user.login]",
    "item",
    "item.title",
    "index",
    "inputs.min",
]


@pytest.mark.parametrize("source", EXPRESSIONS)
def test_bound_evaluation_equals_plain_cel(source):
    expression = compile_expression(source)
    fn = Evaluator(expression).bind(VARIABLES)
    for index, item in enumerate(ITEMS):
        plain = expression.evaluate(Scope({**VARIABLES, "item": item, "index": index}))
        assert fn(item, index) == plain


@pytest.mark.parametrize("source", EXPRESSIONS)
def test_single_evaluation_equals_plain_cel(source):
    expression = compile_expression(source)
    for index, item in enumerate(ITEMS):
        variables = {**VARIABLES, "item": item, "index": index}
        assert Evaluator(expression).evaluate(variables) == expression.evaluate(Scope(variables))


def test_items_of_every_shape_through_one_binding():
    fn = Evaluator.compile("type(item) == map ? item.a : item").bind({})
    assert [fn(x, i) for i, x in enumerate([{"a": 1}, "s", 3, None, [1]])] == [1, "s", 3, None, [1]]


def test_pure_path_errors_and_null_paths():
    fn = Evaluator.compile("item.a.b").bind({})
    assert fn({"a": None}, 0) is None
    assert fn(None, 0) is None
    with pytest.raises(ExpressionError, match=r"`item.a.b`: no such key 'b'"):
        fn({"a": {}}, 0)
    with pytest.raises(ExpressionError, match=r"`item.a.b`: cannot read 'b' of a string"):
        fn({"a": "x"}, 0)
    with pytest.raises(ExpressionError, match="not defined here"):
        Evaluator.compile("item.a").evaluate({})


def test_cel_errors_are_expression_errors():
    fn = Evaluator.compile("item.a / item.b").bind({})
    assert fn({"a": 6, "b": 3}, 0) == 2
    with pytest.raises(ExpressionError, match="division by zero"):
        fn({"a": 1, "b": 0}, 1)


def test_value_templates():
    template = ValueTemplate(
        {"a": "${{ item.x }}", "b": "x=${{ item.x }}, y=${{ item.y }}", "c": [1, "${{ index }}"]}
    )
    fn = template.bind({})
    assert fn({"x": [1, 2], "y": None}, 4) == {"a": [1, 2], "b": "x=[1,2], y=", "c": [1, 4]}
    assert template.evaluate({"item": {"x": True, "y": 1.5}, "index": 0}) == {
        "a": True,
        "b": "x=true, y=1.5",
        "c": [1, 0],
    }
    assert ValueTemplate({"a": [1, {"b": "plain"}]}).is_static
    assert ValueTemplate("${{ timestamp('2024-01-01T00:00:00Z') }}").evaluate({}) == "2024-01-01T00:00:00Z"
    assert ValueTemplate(" ${{ 1 + 1 }} ").evaluate({}) == 2
    assert ValueTemplate("${{ steps.a.output }} and ${{ steps.b.output }}").step_refs() == {"a", "b"}
