"""The data, the pipelines (as YAML) and the hand-written baselines the benchmarks share.

Every baseline does exactly the work of its pipeline and returns the same value, which the
benchmarks check before timing anything: a ratio is only meaningful between equal results.
"""

from __future__ import annotations

import io
import random
from typing import Any

from ruamel.yaml import YAML

from app.pipelines.spec import PipelineSpec

Item = dict[str, Any]

SIX_STEPS_YAML = """\
version: 1
name: bench-six-steps
description: set -> filter -> map -> sort -> unique -> limit over the `items` input
inputs:
  items: {type: array, required: true}
  min_score: {type: integer, default: 100}
  limit: {type: integer, default: 100}
steps:
  - id: source
    uses: core.set
    with: {value: "${{ inputs.items }}"}
  - id: kept
    uses: core.filter
    with:
      items: ${{ steps.source.output }}
      where: item.score >= inputs.min_score && item.kind != "spam"
  - id: shaped
    uses: core.map
    with:
      items: ${{ steps.kept.output }}
      to:
        id: ${{ item.id }}
        title: ${{ upper(item.title) }}
        score: ${{ item.score }}
        domain: ${{ item.domain }}
        label: "${{ item.title }} (${{ item.score }} points)"
  - id: ranked
    uses: core.sort
    with: {items: "${{ steps.shaped.output }}", by: item.score, order: desc}
  - id: distinct
    uses: core.unique
    with: {items: "${{ steps.ranked.output }}", by: item.domain}
  - id: top
    uses: core.limit
    with: {items: "${{ steps.distinct.output }}", count: "${{ inputs.limit }}"}
outputs:
  top: ${{ steps.top.output }}
"""

SIX_STEPS_INPUTS = {"min_score": 100, "limit": 100}

# One single-step pipeline per list step; the `items` input holds the data.
LIST_STEP_YAML: dict[str, str] = {
    "filter": """\
version: 1
name: bench-filter
inputs: {items: {type: array}}
steps:
  - id: step
    uses: core.filter
    with: {items: "${{ inputs.items }}", where: 'item.score >= 250 && item.kind != "spam"'}
outputs: {result: "${{ steps.step.output }}"}
""",
    "map": """\
version: 1
name: bench-map
inputs: {items: {type: array}}
steps:
  - id: step
    uses: core.map
    with:
      items: ${{ inputs.items }}
      to: {id: "${{ item.id }}", title: "${{ item.title }}", score: "${{ item.score }}"}
outputs: {result: "${{ steps.step.output }}"}
""",
    "sort": """\
version: 1
name: bench-sort
inputs: {items: {type: array}}
steps:
  - id: step
    uses: core.sort
    with: {items: "${{ inputs.items }}", by: item.score, order: desc}
outputs: {result: "${{ steps.step.output }}"}
""",
    "unique": """\
version: 1
name: bench-unique
inputs: {items: {type: array}}
steps:
  - id: step
    uses: core.unique
    with: {items: "${{ inputs.items }}", by: item.domain}
outputs: {result: "${{ steps.step.output }}"}
""",
}

# The control for the list steps: the same input, no list work. What a run costs before any step
# touches the list (taking the input into the run's scope) is measured with it and subtracted.
LIST_CONTROL_YAML = """\
version: 1
name: bench-control
inputs: {items: {type: array}}
steps:
  - id: step
    uses: core.set
    with: {value: 0}
outputs: {result: "${{ steps.step.output }}"}
"""

FOR_EACH_YAML = """\
version: 1
name: bench-for-each
inputs:
  ids: {type: array}
  base_url: {type: string}
  concurrency: {type: integer}
steps:
  - id: fetch
    uses: http.get_json
    for_each: ${{ inputs.ids }}
    concurrency: %(concurrency)d
    with: {url: "${{ inputs.base_url }}/items/${{ item }}"}
outputs: {items: "${{ steps.fetch.output }}"}
"""


def load_spec(source: str) -> PipelineSpec:
    """Parse YAML (safe loader) and validate it as a :class:`PipelineSpec`."""
    data = YAML(typ="safe", pure=True).load(io.StringIO(source))
    return PipelineSpec.model_validate(data)


def make_items(count: int, seed: int = 7) -> list[Item]:
    """Deterministic story-like records: ties in ``score``, ~10% spam, ~count/3 domains."""
    rng = random.Random(seed)
    domains = max(1, count // 3)
    return [
        {
            "id": index,
            "title": f"Story {index} about {rng.choice(['python', 'rust', 'go', 'sql', 'cel'])}",
            "score": rng.randint(0, 500),
            "domain": f"site{rng.randrange(domains)}.example.org",
            "kind": "spam" if rng.random() < 0.1 else "story",
            "tags": [rng.choice(["a", "b", "c"]) for _ in range(2)],
        }
        for index in range(count)
    ]


# ---------------------------------------------------------------- hand-written baselines


def _unique_by(items: list[Item], key: str) -> list[Item]:
    seen: set[Any] = set()
    out: list[Item] = []
    for item in items:
        value = item[key]
        if value not in seen:
            seen.add(value)
            out.append(item)
    return out


async def six_steps_baseline(items: list[Item], min_score: int, limit: int) -> dict[str, Any]:
    """The six-step pipeline, by hand, in plain Python (same outputs)."""
    source = list(items)
    kept = [item for item in source if item["score"] >= min_score and item["kind"] != "spam"]
    shaped = [
        {
            "id": item["id"],
            "title": item["title"].upper(),
            "score": item["score"],
            "domain": item["domain"],
            "label": f"{item['title']} ({item['score']} points)",
        }
        for item in kept
    ]
    ranked = sorted(shaped, key=lambda item: item["score"], reverse=True)
    distinct = _unique_by(ranked, "domain")
    return {"top": distinct[:limit]}


async def filter_baseline(items: list[Item]) -> list[Item]:
    return [item for item in items if item["score"] >= 250 and item["kind"] != "spam"]


async def map_baseline(items: list[Item]) -> list[Item]:
    return [{"id": item["id"], "title": item["title"], "score": item["score"]} for item in items]


async def sort_baseline(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda item: item["score"], reverse=True)


async def unique_baseline(items: list[Item]) -> list[Item]:
    return _unique_by(items, "domain")


LIST_STEP_BASELINES = {
    "filter": filter_baseline,
    "map": map_baseline,
    "sort": sort_baseline,
    "unique": unique_baseline,
}
