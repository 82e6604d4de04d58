"""Predicates compiled to Python (app.engine.compiled) give exactly CEL's answers (and CEL's errors,
through the fallback)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from app.engine.compiled import compile_code
from app.engine.compiled_ops import Fallback
from app.engine.evaluation import Evaluator
from app.errors import ExpressionError
from app.pipelines.expressions import Scope, compile_expression

VALUES = [0, 1, -1, 2.5, 250, 2**70, True, False, None, "spam", "a", "é", "", [1], {"x": 1}, float("nan")]
OPERANDS = ['item.a', 'item.b', 'item.n.x', 'item["c"]', "index", "inputs.min", "inputs.nope", "1", "2.5",
            "-1", '"spam"', '"a"', "true", "false", "null", "item"]  # fmt: skip
TEXTS = [*OPERANDS, "item.t"]
RELATIONS = ["==", "!=", "<", "<=", ">", ">="]


def compile_predicate(source: str, variables: dict[str, Any]) -> Callable[[Any, int], Any] | None:
    """The compiled function of ``source`` bound to ``variables`` (None: outside the compiled subset)."""
    code = compile_code(source)
    return None if code is None else code.bind(variables)


def _item(rng: random.Random) -> object:
    if rng.random() < 0.05:
        return rng.choice(VALUES)
    item: dict[str, object] = {}
    for key in "abc":
        if rng.random() < 0.85:
            item[key] = rng.choice(VALUES)
    if rng.random() < 0.8:
        item["t"] = rng.choice(["spam and eggs", "a", "", "éa", "xspam", 3, None])
    if rng.random() < 0.7:
        item["n"] = {"x": rng.choice(VALUES)} if rng.random() < 0.8 else rng.choice(VALUES)
    return item


def _expression(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth < 3 and roll < 0.25:
        op = rng.choice(["&&", "||"])
        return f"{_expression(rng, depth + 1)} {op} {_expression(rng, depth + 1)}"
    if depth < 3 and roll < 0.35:
        return f"!({_expression(rng, depth + 1)})"
    if depth < 3 and roll < 0.42:
        return f"({_expression(rng, depth + 1)})"
    if roll < 0.55:
        method = rng.choice(["contains", "startsWith", "endsWith"])
        return f"{rng.choice(TEXTS)}.{method}({rng.choice(TEXTS)})"
    # (A lone path is no predicate: pure paths have their own, documented, evaluation.)
    return f"{rng.choice(OPERANDS)} {rng.choice(RELATIONS)} {rng.choice(OPERANDS)}"


def _outcome(fn):
    try:
        return ("value", fn())
    except ExpressionError as exc:
        return ("error", exc.message)


def _same(a, b) -> bool:
    if a[0] == "value" and b[0] == "value" and a[1] != a[1] and b[1] != b[1]:
        return True  # both NaN
    return bool(a == b)


@pytest.mark.parametrize("seed", range(8))
def test_random_predicates_agree_with_cel(seed):
    rng = random.Random(seed)
    variables = {"inputs": {"min": rng.choice([1, 2.5, "a", None])}}
    checked = 0
    for _ in range(150):
        source = _expression(rng)
        expression = compile_expression(source)
        evaluator = Evaluator(expression)
        fn = evaluator.bind(variables)
        for index in range(12):
            item = _item(rng)
            scope = Scope({**variables, "item": item, "index": index})
            ours = _outcome(lambda fn=fn, item=item, index=index: fn(item, index))
            cel = _outcome(lambda expression=expression, scope=scope: expression.evaluate(scope))
            assert _same(ours, cel), (source, item, index, ours, cel)
            checked += 1
    assert checked == 150 * 12


def test_string_methods():
    fn = compile_predicate(
        "item.t.contains(inputs.q) || item.t.startsWith('x') || 'abc'.endsWith(item.t)",
        {"inputs": {"q": "py"}},
    )
    assert fn is not None
    assert [fn({"t": t}, 0) for t in ("happy", "xyz", "bc", "zzz")] == [True, True, True, False]
    with pytest.raises(Fallback):
        fn({"t": 1}, 0)


def test_plain_items_never_reach_cel():
    fn = compile_predicate(
        'item.score >= inputs.min && (item.kind != "spam" || !item.pinned)', {"inputs": {"min": 5}}
    )
    assert fn is not None
    items: list[dict[str, object]] = [
        {"score": s, "kind": k, "pinned": p}
        for s in (1, 5, 9.5)
        for k in ("spam", "x")
        for p in (True, False)
    ]
    expected = [
        s >= 5 and (k != "spam" or not p) for s in (1, 5, 9.5) for k in ("spam", "x") for p in (True, False)
    ]
    assert [fn(item, n) for n, item in enumerate(items)] == expected


@pytest.mark.parametrize(
    "item",
    [
        {"score": None, "kind": "x"},
        {"kind": "x"},
        {"score": "7", "kind": "x"},
        {"score": [1], "kind": "x"},
        None,
    ],
)
def test_unsettled_cases_fall_back(item):
    fn = compile_predicate("item.score >= 5 && item.kind == 'x'", {})
    assert fn is not None
    with pytest.raises(Fallback):
        fn(item, 0)


@pytest.mark.parametrize(
    "source",
    [
        "item.title.matches('x')",
        "1 < 2 < 3",
        "item.a == 0x10",
        "item.a == 1u",
        "item.a == 'esc\\n'",
        "x.a == 1",
        "has(item.a)",
    ],
)
def test_outside_the_subset(source):
    assert compile_predicate(source, {}) is None
