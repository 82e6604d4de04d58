"""``core.sort``: sort items by a bare expression (stable), ``asc``/``desc``, optionally keep ``limit``.

``by`` (default: the item itself) is evaluated once per item. Items with equal keys keep their
order. Mixed kinds never fail: booleans < numbers < strings < timestamps < durations < lists <
objects; items whose key is null (or NaN) come last in both orders.

Example::

    - id: top
      uses: core.sort
      with:
        items: [{t: a, score: 5}, {t: b}, {t: c, score: 9}, {t: d, score: 5}]
        by: default(item.score, null)
        order: desc
        limit: 3

Output::

    [{"t": "c", "score": 9}, {"t": "a", "score": 5}, {"t": "d", "score": 5}]
"""

from __future__ import annotations

from typing import Any, Literal

from app.engine.steps.base import CoreStep
from app.engine.steps.common import (
    BareExpression,
    CoreCall,
    CoreParams,
    Count,
    Template,
    choice_param,
    evaluate_each,
    int_param,
    list_param,
)
from app.engine.steps.keys import is_missing, sort_key


class Params(CoreParams):
    items: list[Any] | Template
    by: BareExpression | None = None
    order: Literal["asc", "desc"] | Template = "asc"
    limit: Count | Template | None = None


async def run(call: CoreCall) -> list[Any]:
    items = list_param(call, "items") or []
    order = choice_param(call, "order", ("asc", "desc"), "asc")
    limit = int_param(call, "limit")
    by = call.item_fn("by")
    keys = await evaluate_each(by, items, "by") if by is not None else items
    positions = _plain_order(keys, order == "desc")
    if positions is None:
        present = [(sort_key(key), index) for index, key in enumerate(keys) if not is_missing(key)]
        missing = [index for index, key in enumerate(keys) if is_missing(key)]
        # sort(reverse=True) keeps equal keys in their original order: stable both ways.
        present.sort(key=lambda pair: pair[0], reverse=order == "desc")
        positions = [index for _, index in present]
        positions.extend(missing)
    if limit is not None:
        positions = positions[:limit]
    return [items[index] for index in positions]


def _plain_order(keys: list[Any], descending: bool) -> list[int] | None:
    """The positions in sorted order when every key is a number (no NaN) or every key a string:
    the keys themselves order them as their :func:`sort_key` would (all of one kind, none
    missing). None for anything else."""
    kinds = set(map(type, keys))
    if not (kinds <= _NUMBERS or kinds == _TEXT):
        return None
    if float in kinds and any(key != key for key in keys):
        return None  # NaN is missing: it goes last
    return sorted(range(len(keys)), key=keys.__getitem__, reverse=descending)


_NUMBERS = frozenset({int, float})
_TEXT = frozenset({str})


STEP = CoreStep(
    name="sort",
    Params=Params,
    bare_fields=("by",),
    run=run,
    description="Sort items by `by` (stable), asc or desc, optionally keeping the first `limit`",
)
