"""The fast paths of the list steps give what their general paths give.

* ``evaluate_each`` over whole chunks (``fn.many``, ``map``) against one call per item: same values,
  same error naming the same item, across chunks;
* ``core.filter`` keeping by ``compress`` against the verdict loop;
* ``core.sort`` ordering all-number or all-string keys directly against ``sort_key`` ordering.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from app.engine.evaluation import Evaluator
from app.engine.steps import common
from app.engine.steps.common import CoreCall, evaluate_each
from app.engine.steps.filter import run as filter_run
from app.engine.steps.keys import is_missing, sort_key
from app.engine.steps.sort import run as sort_run
from app.engine.values import ValueTemplate
from app.errors import ExpressionError, MashpipeError, StepError

ODD_ITEMS: list[Any] = [
    {"a": 1, "s": "x"},
    {"a": 2.5, "s": "y"},
    None,
    {"a": "t", "s": 3},
    {"s": "no a"},
    [1, 2],
    "text",
    {"a": 2**70, "s": None},
    {"a": True, "s": ["l"]},
    {"a": {"k": 1}, "s": {"m": 2}},
    7,
]


def _per_item(fn: Any, items: list[Any], field: str) -> tuple[str, Any]:
    out = []
    for index, item in enumerate(items):
        try:
            out.append(fn(item, index))
        except MashpipeError as exc:
            return ("error", f"{field} failed on items[{index}]: {exc.message}")
    return ("value", out)


async def _each(fn: Any, items: list[Any], field: str) -> tuple[str, Any]:
    try:
        return ("value", await evaluate_each(fn, items, field))
    except MashpipeError as exc:
        return ("error", exc.message)


SOURCES = [
    "item.a",  # a pure path: read by itemgetter over the chunk
    "item.a + 1",
    "item.s == 'x' || item.a > 1",
    "upper(item.s)",
    "default(item.a, 0)",  # closures, no many
]


@pytest.mark.parametrize("chunk", [3, 2048])
@pytest.mark.parametrize("source", SOURCES)
async def test_whole_chunks_agree_with_one_call_per_item(
    source: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "CHUNK", chunk)
    rng = random.Random(source)
    for _ in range(40):
        items = [rng.choice(ODD_ITEMS) for _ in range(rng.randint(0, 9))]
        fn = Evaluator.compile(source).bind({})
        assert await _each(fn, items, "where") == _per_item(fn, items, "where"), (source, items)


@pytest.mark.parametrize("chunk", [2, 2048])
async def test_a_generated_map_value_over_chunks(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "CHUNK", chunk)
    to = {"a": "${{ item.a }}", "u": "${{ upper(item.s) }}", "t": "${{ item.s }}#${{ index }}"}
    template = ValueTemplate(to)
    fn = template.bind({})
    assert template.generated
    good = [{"a": n, "s": f"s{n}"} for n in range(7)]
    assert await _each(fn, good, "to") == _per_item(fn, good, "to")
    bad = [*good[:5], {"a": 1}, *good]  # upper of a missing key: CEL's error, on items[5]
    outcome = await _each(fn, bad, "to")
    assert outcome == _per_item(fn, bad, "to")
    assert outcome[0] == "error"
    assert outcome[1].startswith("to failed on items[5]: ")


async def test_a_missing_key_read_by_a_pure_path_names_its_item() -> None:
    fn = Evaluator.compile("item.score").bind({})
    items = [{"score": 1}, None, {"score": 3}, {"other": 4}]
    with pytest.raises(ExpressionError) as caught:
        await evaluate_each(fn, items, "by")
    assert caught.value.message == "by failed on items[3]: `item.score`: no such key 'score'"
    assert await evaluate_each(fn, items[:3], "by") == [1, None, 3]  # a path through null: null


async def test_a_stop_iteration_out_of_a_function_is_not_a_short_list() -> None:
    def stops(item: Any, index: int) -> Any:
        if index == 2:
            raise StopIteration
        return item

    with pytest.raises(RuntimeError):  # what the item-by-item loop always did
        await evaluate_each(stops, [1, 2, 3, 4], "to")


async def test_filter_keeps_the_same_items_and_refuses_non_booleans() -> None:
    rng = random.Random(5)
    for _ in range(60):
        items = [{"n": rng.randint(0, 9)} for _ in range(rng.randint(0, 12))]
        where = Evaluator.compile("item.n > 4").bind({})
        kept = await filter_run(CoreCall("f", {"items": items}, {"where": where}))
        assert kept == [item for item in items if item["n"] > 4]
        assert all(a is b for a, b in zip(kept, [item for item in items if item["n"] > 4], strict=True))
    verdicts = Evaluator.compile("item.n").bind({})
    with pytest.raises(StepError) as caught:
        await filter_run(CoreCall("f", {"items": [{"n": True}, {"n": 1}]}, {"where": verdicts}))
    assert caught.value.message == "where must yield a boolean, got integer on items[1]"


def _reference_order(keys: list[Any], descending: bool) -> list[int]:
    """The general ordering (sort_key, missing last, stable both ways)."""
    present = [(sort_key(key), index) for index, key in enumerate(keys) if not is_missing(key)]
    missing = [index for index, key in enumerate(keys) if is_missing(key)]
    present.sort(key=lambda pair: pair[0], reverse=descending)
    return [index for _, index in present] + missing


KEYS: list[list[Any]] = [
    [3, 1, 2, 1, 3],
    [2.5, 1, 2, 2.0, -0.0, 0, 0.0],
    [1, float("nan"), 0.5, float("nan")],
    ["b", "a", "B", "", "a"],
    [1, "1", 2],
    [None, 3, None, 1],
    [True, 1, False, 0],
    [[2], [1], [1, 0]],
    [{"a": 1}, 2, "x", None, True, [1]],
    [float("inf"), -float("inf"), 2**70, 1],
    [],
]


@pytest.mark.parametrize("keys", KEYS)
@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("limit", [None, 2])
async def test_sort_orders_as_the_general_ordering(keys: list[Any], order: str, limit: int | None) -> None:
    items = [{"k": key, "at": index} for index, key in enumerate(keys)]
    by = Evaluator.compile("item.k").bind({})
    params: dict[str, Any] = {"items": items, "order": order, "limit": limit}
    got = await sort_run(CoreCall("s", params, {"by": by}))
    expected = [items[index] for index in _reference_order(keys, order == "desc")]
    assert [item["at"] for item in got] == [item["at"] for item in expected[:limit]]


async def test_sort_random_numbers_and_strings() -> None:
    rng = random.Random(9)
    by = Evaluator.compile("item.k").bind({})
    for _ in range(200):
        kind = rng.choice(["int", "float", "mixed", "str"])
        keys: list[Any] = []
        for _ in range(rng.randint(0, 15)):
            if kind == "str":
                keys.append(rng.choice(["a", "b", "ab", "", "Z", "é"]))
            elif kind == "int":
                keys.append(rng.randint(-3, 3))
            else:
                keys.append(rng.choice([rng.randint(-3, 3), rng.randint(-3, 3) / 2, math.nan]))
        items = [{"k": key, "at": index} for index, key in enumerate(keys)]
        for order in ("asc", "desc"):
            got = await sort_run(CoreCall("s", {"items": items, "order": order}, {"by": by}))
            expected = _reference_order(keys, order == "desc")
            assert [item["at"] for item in got] == expected, (keys, order)
