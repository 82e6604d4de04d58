"""The pieces of the benchmark harness that decide verdicts and shape the report."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.harness import BenchConfig, BenchResult, Line, MissingDependency, Target, measure, require
from bench.report import print_result, print_summary, write_json
from bench.upstream import upstream_server
from bench.workload import (
    LIST_STEP_BASELINES,
    LIST_STEP_YAML,
    SIX_STEPS_INPUTS,
    SIX_STEPS_YAML,
    load_spec,
    make_items,
    six_steps_baseline,
)


@pytest.mark.parametrize(
    ("op", "value", "threshold", "passed"),
    [
        ("<=", 1.3, 1.3, True),
        ("<=", 1.31, 1.3, False),
        ("<", 2.0, 2.0, False),
        (">=", 5e4, 5e4, True),
        (">=", 49_999.0, 5e4, False),
    ],
)
def test_target_verdicts(op: Any, value: float, threshold: float, passed: bool) -> None:
    assert Target("t", value, op, threshold, "x").passed is passed


async def test_measure_interleaves_variants_and_counts_repeats() -> None:
    calls: list[str] = []

    async def a() -> None:
        calls.append("a")

    async def b() -> None:
        calls.append("b")

    samples = await measure({"a": a, "b": b}, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert {name: len(values) for name, values in samples.items()} == {"a": 3, "b": 3}


def test_require_reports_missing_pieces() -> None:
    assert require("json", "dumps") is json
    with pytest.raises(MissingDependency, match="no_such_module"):
        require("no_such_module")
    with pytest.raises(MissingDependency, match="json has no nope"):
        require("json", "nope")


def test_report_prints_verdicts_and_writes_json(tmp_path: Path) -> None:
    ok = BenchResult(
        "k",
        "A benchmark",
        params={"items": 3},
        lines=[Line("time", 0.0123, "s"), Line("ratio", 2.5, "x")],
        targets=[Target("speed", 60_000.0, ">=", 50_000.0, "items/s"), Target("ratio", 2.5, "<", 2.0, "x")],
    )
    missing = BenchResult("m", "Missing", status="unavailable", error="app.x cannot be imported")
    out = io.StringIO()
    print_result(ok, 1, out)
    print_result(missing, 2, out)
    print_summary([ok, missing], out)
    text = out.getvalue()
    assert "12.30 ms" in text
    assert "2.50x" in text
    assert "PASS" in text
    assert "MISS" in text
    assert "UNAVAILABLE: app.x cannot be imported" in text

    path = tmp_path / "r.json"
    write_json(path, BenchConfig(quick=True, repeats=1), [ok, missing], datetime.now(UTC))
    document = json.loads(path.read_text())
    assert document["summary"] == {"targets": 2, "passed": 1, "missed": 1, "not_run": ["m"]}
    assert [t["passed"] for t in document["benchmarks"][0]["targets"]] == [True, False]


def test_workload_pipelines_are_valid_specs() -> None:
    assert [step.uses for step in load_spec(SIX_STEPS_YAML).steps] == [
        "core.set",
        "core.filter",
        "core.map",
        "core.sort",
        "core.unique",
        "core.limit",
    ]
    for name, source in LIST_STEP_YAML.items():
        assert load_spec(source).steps[0].uses == f"core.{name}"


async def test_baselines_do_the_documented_work() -> None:
    items = make_items(300)
    top = (await six_steps_baseline(items, **SIX_STEPS_INPUTS))["top"]
    assert 0 < len(top) <= SIX_STEPS_INPUTS["limit"]
    scores = [item["score"] for item in top]
    assert scores == sorted(scores, reverse=True)
    assert all(score >= SIX_STEPS_INPUTS["min_score"] for score in scores)
    assert len({item["domain"] for item in top}) == len(top)
    assert all(item["title"].isupper() for item in top)

    kept = await LIST_STEP_BASELINES["filter"](items)
    assert all(i["score"] >= 250 and i["kind"] != "spam" for i in kept)
    assert len(await LIST_STEP_BASELINES["map"](items)) == len(items)
    ranked = await LIST_STEP_BASELINES["sort"](items)
    assert [i["score"] for i in ranked] == sorted((i["score"] for i in items), reverse=True)
    distinct = await LIST_STEP_BASELINES["unique"](items)
    assert len(distinct) == len({i["domain"] for i in items})


@pytest.mark.slow
async def test_upstream_server_answers_json() -> None:
    with upstream_server(delay_ms=1) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{base_url}/items/42")
    assert response.json() == {"id": "42", "title": "Item 42", "score": 42}
