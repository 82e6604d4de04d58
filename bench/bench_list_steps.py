"""Benchmark 3, list steps: core.filter, core.map, core.sort and core.unique at 50,000 items.

Each step runs as a one-step pipeline through the engine (``items: ${{ inputs.items }}``), so the
end-to-end figure includes everything a user pays, the run's intake of a 50,000-item input included.
A control pipeline with the same input and no list work (``core.set`` of a constant) is measured in
the same interleaved loop; the step's own throughput is ``items / (step run - control run)``
(median of the paired differences): that is what the target (at least 50,000 items/s on one core)
is about. The hand-written Python equivalent gives the ratio.
"""

from __future__ import annotations

from typing import Any

from bench.engine_host import compile_plan, run_plan
from bench.harness import BenchConfig, BenchResult, Line, Target, measure, median, profile_async
from bench.workload import LIST_CONTROL_YAML, LIST_STEP_BASELINES, LIST_STEP_YAML, load_spec, make_items

KEY = "list_steps"
TITLE = "List steps: core.filter / map / sort / unique, items per second on one core"
TARGET_ITEMS_PER_S = 50_000.0


async def run(config: BenchConfig) -> BenchResult:
    size = 2_000 if config.quick else 50_000
    repeats = config.repeats if config.quick else max(3, config.repeats // 2 + 1)
    result = BenchResult(KEY, TITLE, params={"items": size, "repeats": repeats})
    items = make_items(size, seed=11)
    inputs: dict[str, Any] = {"items": items}
    control_plan = compile_plan(load_spec(LIST_CONTROL_YAML))

    async def control() -> None:
        await run_plan(control_plan, inputs)

    control_samples: list[float] = []
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

        samples = await measure({"engine": engine, "control": control, "baseline": baseline}, repeats)
        for variant, values in samples.items():
            result.samples[f"{name}.{variant}"] = values
        control_samples += samples["control"]
        engine_s, base_s = median(samples["engine"]), median(samples["baseline"])
        # Paired differences (each step run against the control run next to it) resist drift better
        # than a difference of medians; a step below the noise is floored at 1% of its run.
        paired = median([e - c for e, c in zip(samples["engine"], samples["control"], strict=True)])
        step_s = max(paired, engine_s * 0.01)
        if paired < engine_s * 0.01:
            result.notes.append(f"core.{name}: own time below the noise; floored at 1% of its run")
        rate = size / step_s
        result.lines += [
            Line(f"core.{name}: step's own throughput", rate, "items/s"),
            Line(f"core.{name}: end to end, input intake included", size / engine_s, "items/s"),
            Line(f"core.{name}: hand-written Python", size / base_s, "items/s"),
            Line(f"core.{name}: ratio step time / hand-written", step_s / base_s, "x"),
        ]
        result.targets.append(Target(f"core.{name} items/s", rate, ">=", TARGET_ITEMS_PER_S, "items/s"))
        if config.profile:
            result.notes.append(f"core.{name}:\n" + await profile_async(engine))
    result.lines.insert(
        0, Line(f"control run: {size:,}-item input, no list work", median(control_samples), "s")
    )
    return result
