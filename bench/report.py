"""The printed table and ``bench/results.json``."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from bench.harness import BenchConfig, BenchResult

WIDTH = 96


def print_result(result: BenchResult, number: int, out: TextIO = sys.stdout) -> None:
    """One benchmark's section of the report."""
    print(f"\n== {number}. {result.title}", file=out)
    params = ", ".join(f"{key}={value}" for key, value in result.params.items())
    load = "" if result.load_before is None else f"; load average {result.load_before:.2f}"
    print(f"   ({params}; medians; {result.elapsed_s:.1f} s{load})", file=out)
    if result.status != "ok":
        print(f"   {result.status.upper()}: {result.error}", file=out)
        return
    for line in result.lines:
        print(f"   {line.label:<58} {line.formatted():>24}", file=out)
    for target in result.targets:
        verdict = "PASS" if target.passed else "MISS"
        goal = f"{target.op} {target.formatted(target.threshold)}"
        print(
            f"   target {target.label:<44} {target.formatted(target.value):>14} {goal:>16} {verdict}",
            file=out,
        )
    for note in result.notes:
        print("   " + note.replace("\n", "\n   ").rstrip(), file=out)


def print_summary(results: list[BenchResult], out: TextIO = sys.stdout) -> None:
    """One line per target (and per benchmark that could not run)."""
    print("\n" + "=" * WIDTH, file=out)
    print(f"{'target':<50} {'measured':>14} {'goal':>18} {'result':>8}", file=out)
    print("-" * WIDTH, file=out)
    for result in results:
        if result.status != "ok":
            print(f"{result.key:<50} {'':>14} {'':>18} {result.status.upper():>8}", file=out)
            continue
        for target in result.targets:
            goal = f"{target.op} {target.formatted(target.threshold)}"
            verdict = "PASS" if target.passed else "MISS"
            print(
                f"{target.label:<50} {target.formatted(target.value):>14} {goal:>18} {verdict:>8}", file=out
            )
    print("=" * WIDTH, file=out)


def environment() -> dict[str, Any]:
    """Facts about the machine that the numbers depend on."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def write_json(path: Path, config: BenchConfig, results: list[BenchResult], started: datetime) -> None:
    """Write every number, sample and verdict as JSON."""
    document = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "config": {"quick": config.quick, "repeats": config.repeats, "profile": config.profile},
        "environment": environment(),
        "benchmarks": [result.to_json() for result in results],
        "summary": {
            "targets": sum(len(r.targets) for r in results),
            "passed": sum(t.passed for r in results for t in r.targets),
            "missed": sum(not t.passed for r in results for t in r.targets),
            "not_run": [r.key for r in results if r.status != "ok"],
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
