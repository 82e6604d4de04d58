"""Big inputs: correct results on 50,000 API-like items, and the event loop stays responsive meanwhile.

Throughput is measured outside the test suite (no timing assertions here); see the engine report.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from app.engine.types import RunStatus
from tests.engine.fakes import FakeCaller, load, run

N = 50_000


def _items():
    return [
        {"id": i % 35_000, "title": f"story {i} {'python' if i % 3 else 'rust'}", "score": (i * 7919) % 1000,
         "lang": ("py", "rs", "go")[i % 3], "user": {"login": f"u{i % 50}", "karma": i}}
        for i in range(N)
    ]  # fmt: skip


SPEC = """
version: 1
name: huge
inputs:
  min: {type: integer}
steps:
  - id: src
    uses: demo.src
  - id: ranked
    uses: core.filter
    with:
      items: ${{ steps.src.output }}
      where: item.score >= inputs.min && item.title.contains("python")
  - id: shaped
    uses: core.map
    with:
      items: ${{ steps.ranked.output }}
      to: {id: "${{ item.id }}", who: "${{ item.user.login }}", score: "${{ item.score }}"}
  - id: top
    uses: core.sort
    with: {items: "${{ steps.shaped.output }}", by: item.score, order: desc}
  - id: once
    uses: core.unique
    with: {items: "${{ steps.top.output }}", by: item.id}
  - id: per_user
    uses: core.count
    with: {items: "${{ steps.once.output }}", by: item.who}
  - id: groups
    uses: core.group
    with: {items: "${{ steps.src.output }}", by: item.lang}
  - id: lines
    uses: core.template
    with: {items: "${{ steps.once.output }}", each: "${{ item.id }}:${{ item.score }}"}
outputs:
  kept: ${{ size(steps.once.output) }}
"""


async def test_a_pipeline_over_50k_items_is_correct():
    items = _items()
    result = await run(load(SPEC), {"min": 500}, caller=FakeCaller({"demo.src": items}))
    assert result.status == RunStatus.SUCCEEDED, result.error

    ranked = [i for i in items if i["score"] >= 500 and "python" in i["title"]]
    shaped = [{"id": i["id"], "who": i["user"]["login"], "score": i["score"]} for i in ranked]
    top = sorted(shaped, key=lambda s: s["score"], reverse=True)
    first: dict[object, dict[str, object]] = {}
    for s in top:
        first.setdefault(s["id"], s)
    once = list(first.values())
    counts = Counter(s["who"] for s in once)

    steps = result.steps
    assert steps["ranked"].output == ranked
    assert steps["shaped"].output == shaped
    assert steps["top"].output == top
    assert steps["once"].output == once
    assert steps["per_user"].output == [{"key": k, "count": v} for k, v in counts.items()]
    assert [g["key"] for g in steps["groups"].output] == ["py", "rs", "go"]
    langs = Counter(i["lang"] for i in items)
    assert [len(g["items"]) for g in steps["groups"].output] == [langs["py"], langs["rs"], langs["go"]]
    assert steps["lines"].output == "\n".join(f"{s['id']}:{s['score']}" for s in once)
    assert result.outputs == {"kept": len(once)}


async def test_big_list_steps_let_other_tasks_run():
    items = list(range(N))
    spec = load(
        """
        version: 1
        name: busy
        steps:
          - id: src
            uses: demo.src
          - id: f
            uses: core.filter
            with: {items: "${{ steps.src.output }}", where: "item % 2 == 0"}
        """
    )
    ticks = 0
    stop = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    result = await run(spec, caller=FakeCaller({"demo.src": items}))
    stop.set()
    await task
    assert len(result.steps["f"].output) == N // 2
    assert ticks > 20  # the filter yielded between its chunks of items
