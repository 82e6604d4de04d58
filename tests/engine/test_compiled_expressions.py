"""Compiled value expressions give exactly CEL's answers, and CEL's errors through the fallback.

Differential: random expressions of the subset (and a few outside it) over items full of edge
values are evaluated by the engine (compiled closures, CEL for what they do not settle) and by CEL
alone (the same evaluator with its compiled code removed: the engine's CEL binding per item, the
general path of ``app.pipelines.expressions`` for run-wide evaluation); values, their Python types
and error messages must be identical. Other tests prove that the common cases never reach CEL.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from app.engine.compiled import check_plain, compile_code
from app.engine.compiled_ops import Fallback
from app.engine.evaluation import Evaluator
from app.engine.paths import analyze
from app.engine.values import ValueTemplate
from app.errors import ExpressionError
from app.pipelines.expressions import Expression, Scope, compile_expression, compile_value

BIG = 2**63 - 1
SCALARS: list[Any] = [0, 1, -1, 3, -7, 2, 10, BIG, -BIG - 1, 2**63, 2**64, 2**70, 2.5, -0.0, 0.0,
                      1e308, float("nan"), float("inf"), 2**53 + 1, 2.0**53, True, False, None, "",
                      "a", "Ab", "é🎉", "straße", "ǅx", "  pad  "]  # fmt: skip
CONTAINERS: list[Any] = [[], [1, 2], ["a", None], [[1], {"x": 1}], {}, {"x": 1}, {"x": {"y": "z"}},
                         [2**70], {"a": [1, 2.5]}]  # fmt: skip
PATHS = ["item.a", "item.b", "item.s", "item.l", "item.m", "item.m.x", 'item["a"]', "item.l[0]",
         "item.l[1]", "item.m['x']", "item.nope", "index", "inputs.n", "inputs.s", "inputs.l",
         "inputs.nope", "size(item)", "'a' in item"]  # fmt: skip
# CEL hands maps over in its hash order, random per map (`trim({"b": 1, "a": 2})` twice may differ,
# `[] + {"b": 1, "a": 2}` too): no map of two keys is ever turned into text or a list here.
LITERALS = ["0", "1", "-1", "3", "-7", "2", "9223372036854775807", "-9223372036854775808", "2.5",
            "-0.5", "0.0", "1e308", "true", "false", "null", "'a'", '"x"', "''", "'é🎉'", "[]",
            "[1, 2]", "['a', item.s]", "{'x': 1}", "{'k': [item.a, index]}"]  # fmt: skip
ARITH = ["+", "-", "*", "/", "%"]
RELATIONS = ["==", "!=", "<", "<=", ">", ">=", "in"]


def _value(rng: random.Random) -> Any:
    return rng.choice(SCALARS) if rng.random() < 0.75 else rng.choice(CONTAINERS)


def _item(rng: random.Random) -> Any:
    if rng.random() < 0.04:
        return _value(rng)
    item: dict[str, Any] = {}
    for key in ("a", "b", "s"):
        if rng.random() < 0.9:
            item[key] = _value(rng)
    if rng.random() < 0.8:
        item["l"] = rng.choice([[1, "a"], [BIG, -3], [], [None], rng.choice(CONTAINERS)])
    if rng.random() < 0.8:
        item["m"] = {"x": _value(rng)} if rng.random() < 0.8 else _value(rng)
    return item


def _operand(rng: random.Random) -> str:
    return rng.choice(PATHS) if rng.random() < 0.6 else rng.choice(LITERALS)


def _expression(rng: random.Random, depth: int = 0) -> str:
    if depth >= 3:
        return _operand(rng)
    sub = lambda: _expression(rng, depth + 1)  # noqa: E731
    roll = rng.random()
    if roll < 0.16:
        return _operand(rng)
    if roll < 0.34:
        return f"{sub()} {rng.choice(ARITH)} {sub()}"
    if roll < 0.46:
        return f"{sub()} {rng.choice(RELATIONS)} {sub()}"
    if roll < 0.52:
        return f"({sub()} {rng.choice(['&&', '||'])} {sub()})"
    if roll < 0.58:
        return f"({sub()} ? {sub()} : {sub()})"
    if roll < 0.62:
        return f"-{sub()}" if rng.random() < 0.5 else f"!{sub()}"
    if roll < 0.72:
        name = rng.choice(["upper", "lower", "trim", "size", "join"])
        return f"{name}({sub()})"
    if roll < 0.76:
        separator = rng.choice(['"-"', "item.s", "1"])
        return f"join({sub()}, {separator})"
    if roll < 0.84:
        return f"default({rng.choice(PATHS)}, {sub()})"
    if roll < 0.88:
        return f"default({sub()}, {sub()})"
    if roll < 0.94:
        method = rng.choice(["contains", "startsWith", "endsWith"])
        return f"{sub()}.{method}({sub()})"
    if roll < 0.97:
        return f"({sub()}).size()"
    return f"({sub()})[{sub()}]"


def _same(a: Any, b: Any) -> bool:
    """Equal values of identical Python types, NaN equal to NaN, -0.0 apart from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return ("value", fn())
    except ExpressionError as exc:
        return ("error", exc.message)


def _cel_only(evaluator: Evaluator) -> Evaluator:
    """The same expression evaluated by CEL alone (as the engine did before compiled code)."""
    reference = Evaluator(evaluator.expression)
    reference.code = None
    return reference


def _agree(ours: tuple[str, Any], cel: tuple[str, Any]) -> bool:
    return ours[0] == cel[0] and _same(ours[1], cel[1])


VARIABLES: list[dict[str, Any]] = [
    {"inputs": {"n": 5, "s": "py", "l": [1, 2]}},
    {"inputs": {"n": 2**64, "s": None, "l": "x"}},
    {"inputs": {"n": -2.5, "s": "é", "l": [[1], {"x": "y"}]}},
]


@pytest.mark.parametrize("seed", range(10))
def test_random_expressions_agree_with_cel(seed: int) -> None:
    rng = random.Random(seed)
    compiled = 0
    for _ in range(160):
        source = _expression(rng)
        try:
            expression = compile_expression(source)
        except ValueError:
            continue  # CEL refuses it (e.g. a map literal key type): nothing to compare
        evaluator = Evaluator(expression)
        if evaluator.fast:
            continue  # a pure path has its own, documented, rules (null through a path...)
        compiled += evaluator.code is not None
        other = rng.choice(VARIABLES)
        other_fn, other_cel = evaluator.bind(other), _cel_only(evaluator).bind(other)
        variables = rng.choice(VARIABLES)  # bound second: parts shared between binds must not leak
        fn = evaluator.bind(variables)
        cel_fn = _cel_only(evaluator).bind(variables)
        for index in range(8):
            item = _item(rng)
            ours = _outcome(lambda: fn(item, index))  # noqa: B023
            cel = _outcome(lambda: cel_fn(item, index))  # noqa: B023
            assert _agree(ours, cel), (source, item, index, ours, cel)
            ours = _outcome(lambda: other_fn(item, index))  # noqa: B023
            cel = _outcome(lambda: other_cel(item, index))  # noqa: B023
            assert _agree(ours, cel), (source, other, item, index, ours, cel)
            scope = Scope({**variables, "item": item, "index": index})
            once = _outcome(lambda: evaluator.evaluate({**variables, "item": item, "index": index}))  # noqa: B023
            cel_once = _outcome(lambda: expression.evaluate(scope))  # noqa: B023
            assert _agree(once, cel_once), (source, item, index, once, cel_once)
    assert compiled > 100  # the generator stays inside the subset, mostly: a regression would show


@pytest.mark.parametrize("seed", range(4))
def test_random_templates_agree_with_the_general_path(seed: int) -> None:
    """``ValueTemplate`` (whole values, interpolation, dicts, lists) against CEL alone: per item
    against its evaluators without compiled code, run-wide against ``compile_value``."""
    rng = random.Random(100 + seed)
    for _ in range(60):
        a, b, c = (_expression(rng, 2) for _ in range(3))
        if any(analyze(source).path is not None for source in (a, b, c)):
            continue  # pure paths have their own, documented, rules
        raw = {
            "whole": f"${{{{ {a} }}}}",
            "text": f"<${{{{ {b} }}}}|${{{{{c}}}}}>",
            "list": [f"${{{{ {c} }}}}", 1],
        }
        for field in ("whole", "text", "list"):
            try:
                general = compile_value(raw[field])
            except ValueError:
                continue
            template, reference = ValueTemplate(raw[field]), ValueTemplate(raw[field])
            for evaluator in reference.evaluators():
                evaluator.code = None
            variables = rng.choice(VARIABLES)
            fn, cel_fn = template.bind(variables), reference.bind(variables)
            for index in range(6):
                item = _item(rng)
                ours = _outcome(lambda: fn(item, index))  # noqa: B023
                cel = _outcome(lambda: cel_fn(item, index))  # noqa: B023
                assert _agree(ours, cel), (raw[field], item, ours, cel)
                scope = Scope({**variables, "item": item, "index": index})
                once = _outcome(lambda: template.evaluate({**variables, "item": item, "index": index}))  # noqa: B023
                cel_once = _outcome(lambda: general.evaluate(scope))  # noqa: B023
                assert _agree(once, cel_once), (raw[field], item, once, cel_once)


EDGES = [
    # arithmetic: overflow, truncation toward zero, remainder sign, division by zero, mixing kinds
    "item.a + 1", "item.a - 1", "item.a * 2", "item.a / 2", "item.a % 3", "-item.a", "item.a / 0",
    "item.a % 0", "item.a / -1", "item.a % -1", "7 / item.a", "-7 % item.a", "item.a + 0.5",
    "item.a * 1.5", "item.a / 2.0", "item.a % 2.0", "item.a + item.a", "item.a + 'x'", "item.a + [1]",
    # relations, in, logic, ternary
    "item.a == 1", "item.a == 1.0", "item.a < 2", "item.a in [1, 'a', null]", "item.a in {'a': 1}",
    "item.a == [1]", "item.a > 9007199254740992.0", "item.a == 9007199254740992.0",
    "item.a < 9223372036854775807", "item.a == 9223372036854775807", "9007199254740993 <= item.a",
    "item.a in [9007199254740992.0]", "item.a == [9007199254740992.0]", "item.a ? 'y' : 'n'",
    "item.a && true", "true || item.a", "!item.a", "item.a < 2.5", "item.a >= -1",
    # strings and functions
    "size(item.a)", "item.a.size()", "upper(item.a)", "lower(item.a)", "trim(item.a)",
    "join(item.a)", "join(item.a, '/')", "default(item.a, 'd')", "default(item.a.b, 'd')",
    "default(item.a[0], 'd')", "item.a + '!'", "item.a.contains('a')", "'xay'.contains(item.a)",
    "item.a[0]", "[item.a, index]", "{'v': item.a}",
]  # fmt: skip
EDGE_VALUES: list[Any] = [*SCALARS, *CONTAINERS, -3, 7, "abc", [0, 1], ["a", "b"], {"x": None},
                          {"b": 1}, {"b": None}, {"b": {"c": 1}}, [None], 2**53 + 1, 2.0**53, 2.0**63,
                          [2**53 + 1]]  # fmt: skip


@pytest.mark.parametrize("source", EDGES)
def test_edge_values_agree_with_cel(source: str) -> None:
    expression = compile_expression(source)
    evaluator = Evaluator(expression)
    assert evaluator.code is not None, source
    fn, cel_fn = evaluator.bind({}), _cel_only(evaluator).bind({})
    for value in EDGE_VALUES:
        item = {"a": value}
        ours = _outcome(lambda: fn(item, 4))  # noqa: B023
        cel = _outcome(lambda: cel_fn(item, 4))  # noqa: B023
        assert _agree(ours, cel), (source, value, ours, cel)


COMMON = [
    ("upper(item.title)", "TEA"),
    ("lower(item.title) + '-' + item.kind", "tea-story"),
    ("item.score * 2 + index", 601),
    ("item.score / 7", 42),
    ("-item.score % 7", -6),
    ("item.ratio * 2.0", 1.5),
    ("item.score >= inputs.min && item.kind != 'spam'", True),
    ("item.score > 100 ? 'hot' : 'cold'", "hot"),
    ("size(item.title) + item.title.size()", 6),
    ("item.kind in ['story', 'job']", True),
    ("'tags' in item && item.tags[1] == 'b'", True),
    ("item['meta'].by.startsWith('al')", True),
    ("join(item.tags, ', ')", "a, b"),
    ("default(item.missing.deep, 'n/a')", "n/a"),
    ("default(item.meta.by, 'n/a')", "alice"),
    ("trim('  ' + item.title + ' ')", "Tea"),
    ("[item.score, item.kind]", [300, "story"]),
    ("{'t': item.title, 'n': inputs.min}", {"t": "Tea", "n": 5}),
    ("item.tags + ['c']", ["a", "b", "c"]),
    ("item.meta == {'by': 'alice'}", True),
]
ITEM = {"title": "Tea", "kind": "story", "score": 300, "ratio": 0.75, "tags": ["a", "b"],
        "meta": {"by": "alice"}}  # fmt: skip


@pytest.mark.parametrize(("source", "expected"), COMMON)
def test_common_expressions_never_reach_cel(
    source: str, expected: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluator = Evaluator.compile(source)
    code = compile_code(source)
    assert code is not None
    assert evaluator.code is not None
    assert _same(code.bind({"inputs": {"min": 5}})(ITEM, 1), expected)  # no Fallback raised

    def refuse(self: Expression, scope: Scope) -> Any:
        raise AssertionError(f"CEL evaluated {self.source}")

    monkeypatch.setattr(Expression, "evaluate", refuse)
    assert _same(evaluator.bind({"inputs": {"min": 5}})(ITEM, 1), expected)
    assert _same(evaluator.evaluate({"inputs": {"min": 5}, "item": ITEM, "index": 1}), expected)


def test_map_template_never_reaches_cel(monkeypatch: pytest.MonkeyPatch) -> None:
    template = ValueTemplate(
        {
            "id": "${{ item.id }}",
            "title": "${{ upper(item.title) }}",
            "label": "${{ item.title }} (${{ item.score }} points, ${{ item.ratio }}, ${{ item.ok }})",
            "rank": "#${{ index + 1 }}",
            "tags": ["${{ default(item.tags, []) }}", "${{ size(item.tags) }}"],
        }
    )
    items = [{"id": n, "title": f"stüry {n}", "score": n * 10, "ratio": n / 4, "ok": n % 2 == 0,
              "tags": ["x"] * n} for n in range(5)]  # fmt: skip
    general = compile_value(template.raw)
    expected = [general.evaluate(Scope({"item": item, "index": n})) for n, item in enumerate(items)]

    def refuse(self: Expression, scope: Scope) -> Any:
        raise AssertionError(f"CEL evaluated {self.source}")

    monkeypatch.setattr(Expression, "evaluate", refuse)
    fn = template.bind({})
    got = [fn(item, n) for n, item in enumerate(items)]
    assert got == expected
    assert got[1]["label"] == "stüry 1 (10 points, 0.25, false)"
    assert got[2]["tags"][0] is not items[2]["tags"]  # a copy, as CEL's value would be


@pytest.mark.parametrize(
    "item",
    [{"a": 2**63}, {"a": 2**70}, {"a": BIG}, {"a": float("nan")}, {"a": None}, {}, {"a": True}, None],
)
def test_unsettled_items_fall_back(item: Any) -> None:
    code = compile_code("item.a + 1 > 0 || item.a < 0.5")
    assert code is not None
    with pytest.raises(Fallback):
        code.bind({})(item, 0)


@pytest.mark.parametrize(
    "source",
    [
        "item.tags.map(t, upper(t))",
        "item.tags.exists(t, t == 'a')",
        "has(item.a)",
        "int(item.a) + 1",
        "string(item.a)",
        "item.a == 1u",
        "item.a == 0x10",
        "item.a == 'esc\\n'",
        "b'x'",
        "1 < 2 < 3",
        "timestamp(item.t)",
        "now()",
        "json(item.j)",
        "x.a",
        "{item.k: 1}",
        "{'a': 1, 'a': 2}",
        "item.title.upper()",
        "item.a.size(1)",
    ],
)
def test_outside_the_subset(source: str) -> None:
    assert compile_code(source) is None


def test_run_wide_parts_are_computed_once() -> None:
    numbers = [1, 2]
    code = compile_code("item.x + size(inputs.l) * inputs.n")
    assert code is not None
    fn = code.bind({"inputs": {"n": 2, "l": numbers}})
    numbers.append(3)  # bound already: the size computed at bind time stays
    assert [fn({"x": x}, 0) for x in (1, 2)] == [5, 6]


def test_check_plain() -> None:
    plain = {"a": [1, 2.5, None, True, "x", 2**64 - 1, -(2**63)]}
    assert check_plain(plain) is plain
    for bad in (2**64, -(2**63) - 1, (1, 2), {1: 2}, [2**70], b"x"):
        with pytest.raises(Fallback):
            check_plain(bad)


def test_data_nested_too_deep_for_the_checks_goes_to_cel() -> None:
    deep: Any = [1]
    for _ in range(5000):
        deep = [deep]
    evaluator = Evaluator.compile("default(item.d, 0)")
    assert evaluator.code is not None
    cel = _outcome(lambda: _cel_only(evaluator).bind({})({"d": deep}, 0))
    ours = _outcome(lambda: evaluator.bind({})({"d": deep}, 0))
    assert ours[0] == cel[0]
    if ours[0] == "error":
        assert ours[1] == cel[1]
        return
    a, b = ours[1], cel[1]  # compared level by level: == itself would recurse too deep
    while type(a) is list and type(b) is list and len(a) == len(b) == 1:
        a, b = a[0], b[0]
    assert a == b == 1


def _field_by_field(raw: dict[str, Any], variables: dict[str, Any], item: Any, index: int) -> Any:
    """The dict a ``to:`` gives, built field after field by CEL alone (the first error wins)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        reference = ValueTemplate(value)
        for evaluator in reference.evaluators():
            evaluator.code = None
        out[key] = reference.bind(variables)(item, index)
    return out


@pytest.mark.parametrize("seed", range(3))
def test_dict_templates_agree_field_by_field(seed: int) -> None:
    rng = random.Random(200 + seed)
    raw = {
        "a": "${{ item.a }}",
        "m": "${{ item.m }}",
        "e": "${{ item.nope }}",
        "x": "${{ upper(item.s) }}",
        "t": "${{ item.s }} (${{ item.a }} points)",
        "n": ["${{ item['b'] }}", "${{ index * 2 }}"],
    }
    for keys in (("a", "m", "x", "t", "n"), ("x", "a", "e", "t"), ("a",)):
        subset = {key: raw[key] for key in keys}
        template = ValueTemplate(subset)
        variables = rng.choice(VARIABLES)
        fn = template.bind(variables)
        for index in range(40):
            item = _item(rng)
            ours = _outcome(lambda: fn(item, index))  # noqa: B023
            cel = _outcome(lambda: _field_by_field(subset, variables, item, index))  # noqa: B023
            assert _agree(ours, cel), (keys, item, ours, cel)
            if ours[0] == "value":
                assert list(ours[1]) == list(keys)


def test_binds_share_item_only_parts_but_not_literal_containers() -> None:
    code = compile_code("item.kind != 'spam' && item.n >= inputs.min")
    assert code is not None
    first, second = code.bind({"inputs": {"min": 5}}), code.bind({"inputs": {"min": 50}})
    assert first({"kind": "x", "n": 10}, 0) is True
    assert second({"kind": "x", "n": 10}, 0) is False  # the run-wide part is bound anew
    assert code.shared  # `item.kind != 'spam'` was built once for both
    literal = compile_code("[1, {'a': [2]}]")
    assert literal is not None
    fn = literal.bind({})
    one, two = fn(None, 0), literal.bind({})(None, 1)
    assert one == two == [1, {"a": [2]}]
    assert one is not two
    assert one is not fn(None, 2)


@pytest.mark.parametrize(
    "source",
    ["item.a > 9007199254740992.0", "item.a == 9007199254740992.0", "item.a != item.b", "item.a <= item.b"],
)
def test_relations_compare_an_int_with_a_double_as_cel(source: str) -> None:
    """Compiled relations against CEL, where int and double meet (CEL compares them as doubles)."""
    code = compile_code(source)
    assert code is not None
    fn = code.bind({})
    expression = compile_expression(source)
    for item in ({"a": 2**53 + 1, "b": 2.0**53}, {"a": 2**63 - 1, "b": 2.0**63}, {"a": 3, "b": 3.0}):
        assert fn(item, 0) == expression.evaluate(Scope({"item": item, "index": 0})), (source, item)
