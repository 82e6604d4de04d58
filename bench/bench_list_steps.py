"""Benchmark 3, list steps: core.filter, core.map, core.sort and core.unique at 50,000 items.

Each step runs as a one-step pipeline through the engine (``items: ${{ inputs.items }}``), so the
figure includes everything a user pays: reading the list out of the scope, the per-item CEL
evaluations, and turning the output into JSON values. Target: at least 50,000 items/s each, on one
core. The hand-written Python equivalent gives the ratio.
"""

from __future__ import annotations

from typing import Any

from bench.engine_host import compile_plan, run_plan
from bench.harness import BenchConfig, BenchResult, Line, Target, measure, median, profile_async
from bench.workload import LIST_STEP_BASELINES, LIST_STEP_YAML, load_spec, make_items

KEY = "list_steps"
TITLE = "List steps: core.filter / map / sort / unique, items per second on one core"
TARGET_ITEMS_PER_S = 50_000.0


async def run(config: BenchConfig) -> BenchResult:
    size = 2_000 if config.quick else 50_000
    repeats = max(3, config.repeats // 2) if not config.quick else config.repeats
    result = BenchResult(KEY, TITLE, params={"items": size, "repeats": repeats})
    items = make_items(size, seed=11)
    inputs: dict[str, Any] = {"items": items}

    for name, source in LIST_STEP_YAML.items():
        plan = compile_plan(load_spec(source))
        baseline_fn = LIST_STEP_BASELINES[name]
        expected = await baseline_fn(items)
        got = (await run_plan(plan, inputs)).outputs
        if got != {"result": expected}:
            raise AssertionError(f"core.{name}: engine output differs from the hand-written one")

        async def engine(plan: Any = plan) -> None:
            await run_plan(plan, inputs)

        async def baseline(fn: Any = baseline_fn) -> None:
            await fn(items)

        samples = await measure({"engine": engine, "baseline": baseline}, repeats)
        result.samples[f"{name}.engine"] = samples["engine"]
        result.samples[f"{name}.baseline"] = samples["baseline"]
        engine_s, base_s = median(samples["engine"]), median(samples["baseline"])
        rate = size / engine_s
        result.lines += [
            Line(f"core.{name}: engine", rate, "items/s"),
            Line(f"core.{name}: hand-written", size / base_s, "items/s"),
            Line(f"core.{name}: ratio engine time / hand-written", engine_s / base_s, "x"),
        ]
        result.targets.append(Target(f"core.{name} items/s", rate, ">=", TARGET_ITEMS_PER_S, "items/s"))
        if config.profile:
            result.notes.append(f"core.{name}:\n" + await profile_async(engine))
    return result
