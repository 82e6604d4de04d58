"""Generated per-item functions (app.engine.compiled_gen) agree with the general path and with CEL.

Differential, three ways: each random expression or value is evaluated by its generated function,
by its general function (closures, pure paths, CEL judging; ``bind_general``) and by CEL alone; the
values, their Python types, the error messages and error types must all be identical. Other tests
prove that plain items never leave the generated code, that run-wide parts are read when bound
(and a run-wide part that is not plain makes the whole value take its general path), and that no
text of the pipeline ever becomes source code.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from app.engine import evaluation
from app.engine.compiled_gen import Emitter, NotGenerated, parse
from app.engine.evaluation import Evaluator
from app.engine.paths import analyze
from app.engine.values import ValueTemplate
from app.errors import ExpressionError, MashpipeError
from app.pipelines.expressions import FUNCTIONS, Expression, Scope, compile_expression
from tests.engine.test_compiled_expressions import (
    EDGE_VALUES,
    EDGES,
    VARIABLES,
    _expression,
    _item,
    _same,
)
from tests.engine.test_compiled_predicates import _expression as _predicate


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return ("value", fn())
    except MashpipeError as exc:
        return (f"error {type(exc).__name__}", exc.message)


def _agree(*outcomes: tuple[str, Any]) -> bool:
    first = outcomes[0]
    return all(o[0] == first[0] and _same(o[1], first[1]) for o in outcomes[1:])


def _cel_only(evaluator: Evaluator) -> Evaluator:
    reference = Evaluator(evaluator.expression)
    reference.code = None
    return reference


def _check_expression(source: str, variables: dict[str, Any], items: list[Any]) -> bool:
    """Compare the three paths on ``items``; whether the expression got a generated function."""
    try:
        expression = compile_expression(source)
    except ValueError:
        return False
    evaluator = Evaluator(expression)
    if evaluator.fast:
        return False
    fn = evaluator.bind(variables)
    general = evaluator.bind_general(variables)
    cel = _cel_only(evaluator).bind(variables)
    for index, item in enumerate(items):
        outcomes = [_outcome(lambda f=f, i=item, n=index: f(i, n)) for f in (fn, general, cel)]
        assert _agree(*outcomes), (source, variables, item, outcomes)
    return evaluator.generated


@pytest.mark.parametrize("seed", range(10))
def test_random_expressions_three_ways(seed: int) -> None:
    rng = random.Random(300 + seed)
    generated = 0
    for _ in range(150):
        source = _expression(rng)
        items = [_item(rng) for _ in range(8)]
        generated += _check_expression(source, rng.choice(VARIABLES), items)
    assert generated > 50  # the generator covers most of the subset: a regression would show


@pytest.mark.parametrize("seed", range(6))
def test_random_predicates_three_ways(seed: int) -> None:
    rng = random.Random(400 + seed)
    variables: list[dict[str, Any]] = [
        {"inputs": {"min": 2}},
        {"inputs": {"min": 2.5}},
        {"inputs": {"min": "a"}},
        {"inputs": {}},
    ]
    generated = 0
    for _ in range(150):
        source = _predicate(rng)
        items = [_item(rng) for _ in range(6)]
        items += [{"a": 1, "b": "spam", "c": 3, "t": "spam and eggs", "n": {"x": 250}}, None, 7, {}]
        generated += _check_expression(source, rng.choice(variables), items)
    assert generated > 60


@pytest.mark.parametrize("source", EDGES)
def test_edge_values_three_ways(source: str) -> None:
    for variables in ({}, *VARIABLES):
        assert _check_expression(source, variables, [{"a": value} for value in EDGE_VALUES]) or (
            "default(" in source  # safe_default stays with the closures
        )


def _reference(raw: Any) -> ValueTemplate:
    reference = ValueTemplate(raw)
    for evaluator in reference.evaluators():
        evaluator.code = None
    return reference


def _check_template(raw: Any, variables: dict[str, Any], items: list[Any]) -> bool:
    try:
        template = ValueTemplate(raw)
    except ValueError:
        return False
    fn = template.bind(variables)
    general = template.bind_general(variables)
    cel = _reference(raw).bind(variables)
    for index, item in enumerate(items):
        outcomes = [_outcome(lambda f=f, i=item, n=index: f(i, n)) for f in (fn, general, cel)]
        assert _agree(*outcomes), (raw, variables, item, outcomes)
    return template.generated


@pytest.mark.parametrize("seed", range(6))
def test_random_templates_three_ways(seed: int) -> None:
    """Dicts of whole values, pure paths, interpolations and lists, as ``core.map``'s ``to``."""
    rng = random.Random(500 + seed)
    paths = ["item.a", "item.s", "item.m.x", "item.nope", "inputs.n", "inputs.s", "index", "item"]
    generated = 0
    for _ in range(50):
        a, b, c = (_expression(rng, 2) for _ in range(3))
        if any(analyze(source).path is not None for source in (a, b)):
            continue
        raw = {
            "whole": f"${{{{ {a} }}}}",
            "path": f"${{{{ {rng.choice(paths)} }}}}",
            "text": f"<${{{{ {b} }}}}|${{{{{rng.choice(paths)}}}}} 100% {{x}}>",
            "list": [f"${{{{ {c} }}}}", 1, "plain"],
            "const": {"k": [1, "two"]},
        }
        keys = rng.sample(sorted(raw), rng.randint(1, len(raw)))
        value = {key: raw[key] for key in keys}
        items = [_item(rng) for _ in range(8)]
        generated += _check_template(value, rng.choice(VARIABLES), items)
    assert generated > 20


BENCH_TO = {
    "id": "${{ item.id }}",
    "title": "${{ upper(item.title) }}",
    "score": "${{ item.score }}",
    "url": "${{ item.url }}",
    "label": "${{ item.title }} (${{ item.score }} points)",
}
BENCH_ITEMS = [
    {"id": n, "title": f"Story {n} ünï", "score": n * 7, "url": f"https://x/{n}", "kind": "story"}
    for n in range(9)
]


def _refuse(variables: Any) -> Any:
    raise AssertionError("the general path was bound")


def test_plain_items_never_leave_the_generated_code(monkeypatch: pytest.MonkeyPatch) -> None:
    where = Evaluator.compile('item.score >= inputs.min_score && item.kind != "spam"')
    to = ValueTemplate(BENCH_TO)
    variables = {"inputs": {"min_score": 20}}
    expected_where = [where.bind_general(variables)(item, n) for n, item in enumerate(BENCH_ITEMS)]
    expected_to = [to.bind_general(variables)(item, n) for n, item in enumerate(BENCH_ITEMS)]
    monkeypatch.setattr(Evaluator, "bind_general", _refuse)
    monkeypatch.setattr(ValueTemplate, "bind_general", _refuse)

    def no_cel(self: Expression, scope: Scope) -> Any:
        raise AssertionError("CEL evaluated an item")

    monkeypatch.setattr(Expression, "evaluate", no_cel)
    where_fn, to_fn = where.bind(variables), to.bind(variables)
    assert where.generated
    assert to.generated
    assert [where_fn(item, n) for n, item in enumerate(BENCH_ITEMS)] == expected_where
    assert [to_fn(item, n) for n, item in enumerate(BENCH_ITEMS)] == expected_to
    assert expected_to[3]["label"] == "Story 3 ünï (21 points)"


def test_unusual_items_take_the_general_path_with_its_errors() -> None:
    to = ValueTemplate(BENCH_TO)
    fn = to.bind({})
    assert to.generated
    cases: list[Any] = [
        {"id": 1, "title": 5, "score": 1, "url": "u"},  # upper of a number: CEL's error
        {"id": 1, "score": 1, "url": "u"},  # a missing key
        None,  # a null item: pure paths give null, upper(null) is CEL's error
        {"id": 1, "title": "t", "score": True, "url": None},  # booleans and null as text
        {"id": 1, "title": "t", "score": 2**70, "url": [1, {"a": None}]},  # a big int, a list as text
        {"id": 1, "title": "t", "score": 1.5, "url": "u"},
        "text",
    ]
    for item in cases:
        ours = _outcome(lambda: fn(item, 0))  # noqa: B023
        general = _outcome(lambda: to.bind_general({})(item, 0))  # noqa: B023
        cel = _outcome(lambda: _reference(BENCH_TO).bind({})(item, 0))  # noqa: B023
        assert _agree(ours, general, cel), (item, ours, general, cel)
    with pytest.raises(ExpressionError):
        fn({"id": 1, "score": 1, "url": "u"}, 0)


def test_a_run_wide_part_that_is_not_plain_binds_the_general_path() -> None:
    where = Evaluator.compile("item.n > inputs.min && item.n < inputs.max")
    items = [{"n": 1}, {"n": 5}, {"n": 50}]
    for variables in (
        {"inputs": {"min": 2, "max": 10}},
        {"inputs": {"min": 2}},
        {},
        {"inputs": {"min": 2**70}},
    ):
        general = where.bind_general(variables)
        fn = where.bind(variables)
        for item in items:
            assert _agree(_outcome(lambda: fn(item, 0)), _outcome(lambda: general(item, 0)))  # noqa: B023


def test_run_wide_parts_are_read_when_bound() -> None:
    inputs: dict[str, Any] = {"min": 5, "tag": "a"}
    where = Evaluator.compile("item.n >= inputs.min && item.tag == inputs.tag")
    fn = where.bind({"inputs": inputs})
    inputs["min"] = 100  # bound already
    assert fn({"n": 6, "tag": "a"}, 0) is True
    again = where.bind({"inputs": inputs})
    assert again({"n": 6, "tag": "a"}, 0) is False


def test_literal_containers_are_new_on_every_item() -> None:
    template = ValueTemplate({"l": "${{ [item.a, 1] }}", "m": "${{ {'k': item.a} }}", "c": [1, 2]})
    fn = template.bind({})
    assert template.generated
    one, two = fn({"a": 1}, 0), fn({"a": 1}, 1)
    assert one == two == {"l": [1, 1], "m": {"k": 1}, "c": [1, 2]}
    assert one["l"] is not two["l"]
    assert one["m"] is not two["m"]
    assert one["c"] is template.bind_general({})({"a": 1}, 0)["c"]  # a constant, as the general path


def test_a_list_from_data_is_copied_as_the_general_path_does() -> None:
    template = ValueTemplate({"tags": "${{ item.tags + [] }}", "same": "${{ item.tags }}"})
    item = {"tags": ["x", "y"]}
    got = template.bind({})(item, 0)
    assert got == {"tags": ["x", "y"], "same": ["x", "y"]}
    assert got["tags"] is not item["tags"]
    assert got["same"] is item["tags"]  # a pure path hands data on as it is, as the general path


@pytest.mark.parametrize("name", ["upper", "lower", "trim"])
def test_the_inlined_string_functions_are_the_functions_cel_calls(name: str) -> None:
    methods: dict[str, Callable[[str], str]] = {"upper": str.upper, "lower": str.lower, "trim": str.strip}
    method = methods[name]
    for text in ["", "abc", "ÀÉÎ", "straße", "ǅx", "  pad \t\n", "ﬁ", "İ", "\u00a0x\u2003"]:
        assert FUNCTIONS[name](text) == method(text), (name, text)


@pytest.mark.parametrize(
    "text",
    [
        "'); import os; os._exit(3); ('",
        '"""\nraise SystemExit\n"""',
        "{item} {{x}} %s %d %% \\n \\",
        "\x00\u2028\U0001f389",
    ],
)
def test_pipeline_text_never_becomes_source(text: str) -> None:
    literal = "".join(c for c in text if c.isprintable() and c not in "'\"\\")  # a valid CEL string
    raw = {text: f"{text}${{{{ item.a }}}}{text}", "k": f"${{{{ item.a + '{literal}' }}}}"}
    template = ValueTemplate(raw)
    fn = template.bind({})
    got = fn({"a": "v"}, 0)
    assert got == template.bind_general({})({"a": "v"}, 0)
    assert got[text] == f"{text}v{text}"


def test_the_emitter_declines_what_it_does_not_cover() -> None:
    assert not _generated("default(item.a.b, 'x')")  # safe_default: the closures
    assert not _generated("item.tags.exists(t, t == 'a')")  # CEL alone
    assert not _generated("item.a")  # a pure path: read directly already
    assert _generated("item.a.b == 'x' || index > 2")


def _generated(source: str) -> bool:
    evaluator = Evaluator.compile(source)
    evaluator.bind({})
    return evaluator.generated


def test_the_generated_source_binds_every_non_trivial_value() -> None:
    emitter = Emitter()
    result = emitter.expression(parse("item.a + 2.5 > inputs.x ? 'yes' : [1e999]"))
    source = emitter.source(result)
    assert "1e999" not in source
    assert "inf" not in source
    assert "'yes'" in source  # strings are repr()
    factory = emitter.finish(result)
    fn = factory({"inputs": {"x": 1.0}}, _refuse)
    assert fn is not None
    assert fn({"a": 0.5}, 0) == "yes"
    assert fn({"a": -5.0}, 0) == [float("inf")]


@pytest.mark.parametrize(
    "source",
    [
        "item.a ? upper(item.s) : item.s + 1",
        "(item.a && upper(item.s) == 'X') || item.s == 5",
        "upper(item.s) + item.s",
        "lower(trim(item.s)) == item.s",
        "item.a ? size(item.s) : upper(item.s)",
    ],
)
def test_types_learnt_in_a_branch_stay_in_it(source: str) -> None:
    items = [{"a": a, "s": s} for a in (True, False, 1) for s in ("x", "X ", 5, None, 2.5, ["l"])]
    assert _check_expression(source, {}, items)


def test_a_value_checked_as_text_is_text_in_the_fields_after_it() -> None:
    raw = {"u": "${{ upper(item.s) }}", "t": "${{ item.s }}!", "n": "${{ item.s }}"}
    items = [{"s": "a"}, {"s": 5}, {"s": None}, {"s": True}, {"s": [1]}, {}]
    assert _check_template(raw, {}, items)


def test_in_production_the_function_is_generated_at_the_second_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluation, "GENERATE_AT_BIND", 2)
    where = Evaluator.compile("item.n > inputs.min && item.s != 'x'")
    to = ValueTemplate({"n": "${{ item.n + 1 }}", "t": "${{ item.s }}!"})
    items = [{"n": 5, "s": "a"}, {"n": 1, "s": "x"}, {"n": "q"}, None]
    variables = {"inputs": {"min": 2}}
    first_where, first_to = where.bind(variables), to.bind(variables)
    assert not where.generated
    assert not to.generated
    second_where, second_to = where.bind(variables), to.bind(variables)
    assert where.generated
    assert to.generated
    for index, item in enumerate(items):
        assert _agree(_outcome(lambda: first_where(item, index)), _outcome(lambda: second_where(item, index)))  # noqa: B023
        assert _agree(_outcome(lambda: first_to(item, index)), _outcome(lambda: second_to(item, index)))  # noqa: B023


def test_a_generator_failure_leaves_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Emitter, tree: Any) -> str:
        raise TypeError("a bug in the generator")

    monkeypatch.setattr(Emitter, "expression", broken)
    where = Evaluator.compile("item.n > 1 && item.s != 'x'")
    fn = where.bind({})
    assert not where.generated
    assert [fn({"n": n, "s": "y"}, 0) for n in (0, 2)] == [False, True]


@pytest.mark.parametrize("source", ["1 && item.t", '"x" || item.t'])
def test_a_literal_that_is_not_a_boolean_left_of_a_logical_operator_is_not_generated(source: str) -> None:
    # (``1 is True`` would compile with a SyntaxWarning; CEL's error comes from the general path)
    emitter = Emitter()
    with pytest.raises(NotGenerated, match="literal"):
        emitter.finish(emitter.expression(parse(source)))
