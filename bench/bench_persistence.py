"""Benchmark 4, persistence: the six-step pipeline run through the runtime's RunService.

Placeholder until the runtime lands (replaced below).
"""

from __future__ import annotations

from bench.harness import BenchConfig, BenchResult, require

KEY = "persistence"
TITLE = "Persistence: 6-step run through RunService on SQLite vs the engine alone"


async def run(config: BenchConfig) -> BenchResult:
    require("app.runtime.service", "RunService")
    return BenchResult(KEY, TITLE)
