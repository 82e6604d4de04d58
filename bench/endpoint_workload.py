"""The published-endpoint workload: the upstream's 50 items, the pipeline, and the expected answer.

The three servers of the endpoint benchmark (Mashpipe, the hand-written FastAPI + aiohttp
endpoint, Node-RED) all GET the same local upstream list of 50 items and answer
``{"top": [...]}``: the items with ``score >= min_score`` that are not spam, each reshaped
(``title`` upper-cased, a ``label`` built by interpolation), sorted by score descending, the first
10. Scores are distinct, so the order does not depend on how a sort breaks ties, and every string
is ASCII, so upper-casing is the same in CEL, Python and JavaScript.

:func:`top_items` is the reference implementation (the hand-written endpoint uses it), and the
benchmark checks that every server's answer equals it before measuring anything.
"""

from __future__ import annotations

import random
from typing import Any

Item = dict[str, Any]

ITEM_COUNT = 50
TOP = 10
DEFAULT_MIN_SCORE = 20
ACCOUNT = "default"  # the bootstrap account of a fresh `mashpipe serve`
PIPELINE = "bench-top-items"
PIPELINE_CACHED = "bench-top-items-cached"
CACHE_DURATION = "10m"
UPSTREAM_PATH = "/items"

_WORDS = ("python", "rust", "go", "sql", "cel", "yaml", "http", "json", "cache", "queue")


def make_upstream_items(count: int = ITEM_COUNT, seed: int = 11) -> list[Item]:
    """Deterministic items with distinct scores (a shuffled range), ~1 in 6 of kind ``spam``."""
    rng = random.Random(seed)
    scores = rng.sample(range(100), count)
    return [
        {
            "id": index + 1,
            "title": f"Story {index + 1} about {rng.choice(_WORDS)}",
            "score": score,
            "url": f"https://news.example.org/items/{index + 1}",
            "kind": "spam" if index % 6 == 5 else "story",
            "tags": [rng.choice(_WORDS) for _ in range(3)],
        }
        for index, score in enumerate(scores)
    ]


def top_items(items: list[Item], min_score: int = DEFAULT_MIN_SCORE) -> dict[str, Any]:
    """The answer every server must give: filter, map, sort by score descending, keep 10."""
    kept = [item for item in items if item["score"] >= min_score and item["kind"] != "spam"]
    shaped = [
        {
            "id": item["id"],
            "title": item["title"].upper(),
            "score": item["score"],
            "url": item["url"],
            "label": f"{item['title']} ({item['score']} points)",
        }
        for item in kept
    ]
    shaped.sort(key=lambda item: item["score"], reverse=True)
    return {"top": shaped[:TOP]}


PIPELINE_YAML = """\
version: 1
name: %(name)s
description: The endpoint benchmark's mashup - the top 10 stories of a local upstream list.
inputs:
  min_score: {type: integer, default: %(min_score)d, description: Lowest score kept}
triggers:
  - endpoint: %(endpoint)s
steps:
  - id: fetch
    uses: http.get_json
    with: {url: "%(upstream)s"}
  - id: kept
    uses: core.filter
    with:
      items: ${{ steps.fetch.output }}
      where: item.score >= inputs.min_score && item.kind != "spam"
  - id: shaped
    uses: core.map
    with:
      items: ${{ steps.kept.output }}
      to:
        id: ${{ item.id }}
        title: ${{ upper(item.title) }}
        score: ${{ item.score }}
        url: ${{ item.url }}
        label: "${{ item.title }} (${{ item.score }} points)"
  - id: ranked
    uses: core.sort
    with: {items: "${{ steps.shaped.output }}", by: item.score, order: desc, limit: %(top)d}
outputs:
  top: ${{ steps.ranked.output }}
"""


def pipeline_yaml(upstream_url: str, *, name: str = PIPELINE, cache: str | None = None) -> str:
    """The pipeline of the benchmark, reading ``upstream_url``; ``cache`` sets the endpoint's cache."""
    endpoint = "{format: json, public: true%s}" % (f", cache: {cache}" if cache else "")
    return PIPELINE_YAML % {
        "name": name,
        "min_score": DEFAULT_MIN_SCORE,
        "endpoint": endpoint,
        "upstream": upstream_url,
        "top": TOP,
    }


def app_path(name: str = PIPELINE, min_score: int = DEFAULT_MIN_SCORE) -> str:
    """The published endpoint's path (with its query string) on a Mashpipe server."""
    return f"/v1/apps/{ACCOUNT}/{name}?min_score={min_score}"
