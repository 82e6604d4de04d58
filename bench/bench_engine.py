"""Benchmark 1, engine overhead: the six-step core pipeline vs the same work written by hand."""

from __future__ import annotations

from typing import Any

from bench.engine_host import compile_plan, run_plan
from bench.harness import BenchConfig, BenchResult, Line, measure, median, profile_async
from bench.workload import SIX_STEPS_INPUTS, SIX_STEPS_YAML, load_spec, make_items, six_steps_baseline

KEY = "engine_overhead"
TITLE = "Engine overhead: 6-step core pipeline (set, filter, map, sort, unique, limit)"


async def run(config: BenchConfig) -> BenchResult:
    size = 200 if config.quick else 1_000
    result = BenchResult(KEY, TITLE, params={"items": size, "steps": 6, "repeats": config.repeats})
    items = make_items(size)
    inputs: dict[str, Any] = {"items": items, **SIX_STEPS_INPUTS}

    spec = load_spec(SIX_STEPS_YAML)
    plan = compile_plan(spec)

    expected = await six_steps_baseline(items, **SIX_STEPS_INPUTS)
    got = (await run_plan(plan, inputs)).outputs
    if got != expected:
        raise AssertionError(f"engine outputs differ from the baseline's: {_first_difference(got, expected)}")

    async def engine() -> None:
        await run_plan(plan, inputs)

    async def engine_with_compile() -> None:
        await run_plan(compile_plan(spec), inputs)

    async def compile_only() -> None:
        compile_plan(spec)

    async def baseline() -> None:
        await six_steps_baseline(items, **SIX_STEPS_INPUTS)

    variants = {"engine": engine, "engine+compile": engine_with_compile, "compile": compile_only}
    cpu: dict[str, list[float]] = {}
    samples = await measure({**variants, "baseline": baseline}, config.repeats, cpu=cpu)
    result.samples = {**samples, **{f"{name}.cpu": values for name, values in cpu.items()}}
    engine_s, with_compile_s, compile_s, base_s = (
        median(samples[k]) for k in ("engine", "engine+compile", "compile", "baseline")
    )
    result.lines = [
        Line("engine: execute (plan cached)", engine_s, "s"),
        Line("engine: compile_plan + execute", with_compile_s, "s"),
        Line("compile_plan alone", compile_s, "s"),
        Line("hand-written Python", base_s, "s"),
        Line("ratio execute / hand-written", engine_s / base_s, "x"),
        Line("ratio compile+execute / hand-written", with_compile_s / base_s, "x"),
        Line("CPU time: engine execute", median(cpu["engine"]), "s"),
        Line("CPU time: hand-written", median(cpu["baseline"]), "s"),
    ]
    result.notes.append("No target: the ratio shows what CEL + the engine cost over plain Python.")
    if config.profile:
        result.notes.append(await profile_async(engine))
    return result


def _first_difference(got: Any, expected: Any) -> str:
    if not isinstance(got, dict) or not isinstance(expected, dict):
        return f"got {type(got).__name__}, expected {type(expected).__name__}"
    for key in expected:
        a, b = got.get(key), expected[key]
        if a != b:
            if isinstance(a, list) and isinstance(b, list):
                if len(a) != len(b):
                    return f"outputs.{key}: {len(a)} items, expected {len(b)}"
                for index, (x, y) in enumerate(zip(a, b, strict=True)):
                    if x != y:
                        return f"outputs.{key}[{index}]: {x!r} != {y!r}"
            return f"outputs.{key}: {str(a)[:200]} != {str(b)[:200]}"
    return f"extra keys {sorted(set(got) - set(expected))}"
