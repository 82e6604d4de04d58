"""``core.join``: pair the objects of ``left`` and ``right`` whose keys are equal, and merge each pair.

``on.left`` is a bare expression evaluated per left item, ``on.right`` per right item (each with
``item``/``index`` bound to its own side). Keys compare as JSON values (``1`` equals ``1.0``); a
null key matches nothing. Output order: left order, then right order for several matches.

Merging: ``{**left, **right}`` — when both sides have a field, the **right** value wins (the
right list usually enriches the left one; the join keys are equal anyway). ``kind: inner``
(default) drops left items without a match; ``kind: left`` keeps them unchanged. Items must be
objects.

Example::

    - id: enriched
      uses: core.join
      with:
        left: [{id: 1, title: Tea}, {id: 2, title: Cake}, {id: 3, title: Bun}]
        right: [{story: 1, comments: 4}, {story: 3, comments: 0}]
        on: {left: item.id, right: item.story}
        kind: left

Output::

    [{"id": 1, "title": "Tea", "story": 1, "comments": 4}, {"id": 2, "title": "Cake"},
     {"id": 3, "title": "Bun", "story": 3, "comments": 0}]
"""

from __future__ import annotations

from typing import Any, Literal

from app.engine.paths import json_type
from app.engine.steps.base import CoreStep
from app.engine.steps.common import (
    BareExpression,
    CoreCall,
    CoreParams,
    Template,
    choice_param,
    evaluate_each,
    invalid,
    list_param,
    pause,
)
from app.engine.steps.keys import hash_key


class JoinOn(CoreParams):
    left: BareExpression
    right: BareExpression


class Params(CoreParams):
    left: list[Any] | Template
    right: list[Any] | Template
    on: JoinOn
    kind: Literal["inner", "left"] | Template = "inner"


def _objects(items: list[Any], side: str) -> None:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise invalid(f"{side}[{index}] must be an object to be joined, got {json_type(item)}")


async def run(call: CoreCall) -> list[Any]:
    left = list_param(call, "left") or []
    right = list_param(call, "right") or []
    kind = choice_param(call, "kind", ("inner", "left"), "inner")
    on_left, on_right = call.item_fn("on.left"), call.item_fn("on.right")
    assert on_left is not None
    assert on_right is not None
    _objects(left, "left")
    _objects(right, "right")
    right_keys = await evaluate_each(on_right, right, "on.right")
    index: dict[Any, list[dict[str, Any]]] = {}
    for item, key in zip(right, right_keys, strict=True):
        if key is not None:
            index.setdefault(hash_key(key), []).append(item)
    left_keys = await evaluate_each(on_left, left, "on.left")
    joined: list[Any] = []
    for done, (item, key) in enumerate(zip(left, left_keys, strict=True), start=1):
        matches = index.get(hash_key(key)) if key is not None else None
        if matches:
            joined.extend({**item, **match} for match in matches)
        elif kind == "left":
            joined.append(dict(item))
        await pause(done)
    return joined


STEP = CoreStep(
    name="join",
    Params=Params,
    bare_fields=("on.left", "on.right"),
    run=run,
    description="Join two lists of objects on equal keys; right fields win on conflicts",
)
