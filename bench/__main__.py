"""``python -m bench [--quick] [--only NAME ...] [--repeats N] [--profile] [--output FILE]``.

Exit status: 0 when every benchmark ran (targets missed or not: PASS/MISS is in the report),
1 when a benchmark crashed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import traceback
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    bench_engine,
    bench_for_each,
    bench_list_steps,
    bench_persistence,
    bench_recorder,
    bench_runs_listing,
    endpoint_bench,
    webhook_bench,
)
from bench.harness import BenchConfig, BenchResult, MissingDependency
from bench.report import print_result, print_summary, write_json

BenchFn = Callable[[BenchConfig], Coroutine[Any, Any, BenchResult]]

BENCHMARKS: dict[str, tuple[str, BenchFn]] = {
    module.KEY: (module.TITLE, module.run)
    for module in (
        bench_engine,
        bench_for_each,
        bench_list_steps,
        bench_persistence,
        bench_recorder,
        bench_runs_listing,
        endpoint_bench,
        webhook_bench,
    )
}
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Mashpipe benchmarks vs baselines.")
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds (smoke test)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only these: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions per variant (median)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of each engine variant")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def run_one(key: str, config: BenchConfig) -> BenchResult:
    """Run one benchmark in a fresh event loop; turn its failure into a result, never an exception."""
    title, fn = BENCHMARKS[key]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    started = time.perf_counter()
    try:
        result: BenchResult = asyncio.run(fn(config))
    except MissingDependency as exc:
        result = BenchResult(key, title, status="unavailable", error=str(exc))
    except Exception as exc:
        detail = traceback.format_exc(limit=-4)
        result = BenchResult(key, title, status="error", error=f"{type(exc).__name__}: {exc}\n{detail}")
    result.elapsed_s = time.perf_counter() - started
    result.load_before = load
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 7)
    config = BenchConfig(quick=args.quick, repeats=repeats, profile=args.profile)
    started = datetime.now(UTC)
    keys = args.only or list(BENCHMARKS)
    mode = "quick (small sizes)" if config.quick else "full"
    print(f"Mashpipe benchmarks, {mode}, {repeats} timed repetitions per variant, medians reported")
    results: list[BenchResult] = []
    for number, key in enumerate(keys, start=1):
        result = run_one(key, config)
        results.append(result)
        print_result(result, number)
        sys.stdout.flush()
    print_summary(results)
    write_json(args.output, config, results, started)
    print(f"results written to {args.output}")
    return 1 if any(r.status == "error" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
