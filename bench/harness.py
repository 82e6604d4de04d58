"""Timing and result types shared by every benchmark.

Machines are shared and noisy, so every variant is run ``repeats`` times, interleaved with the
other variants of the same benchmark (A B A B ... rather than A A A B B B, so that a slow spell hits
both), after a warm-up, and the median is kept.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import importlib
import io
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any, Literal

Status = Literal["ok", "unavailable", "error"]
AsyncFn = Callable[[], Awaitable[Any]]


class MissingDependency(Exception):
    """A piece the benchmark needs has not landed (yet): reported as ``unavailable``, not a crash."""


def require(module: str, *names: str) -> ModuleType:
    """Import ``module`` and check it has ``names``; raise :class:`MissingDependency` otherwise."""
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(f"{module} cannot be imported ({exc})") from exc
    missing = [name for name in names if not hasattr(loaded, name)]
    if missing:
        raise MissingDependency(f"{module} has no {', '.join(missing)}")
    return loaded


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """How to run: small sizes (``quick``), how many timed repetitions, whether to profile."""

    quick: bool = False
    repeats: int = 7
    profile: bool = False


@dataclass(slots=True)
class Line:
    """One reported number: a time in seconds (``unit="s"``), a ratio (``"x"``), a rate
    (``"items/s"``, ``"req/s"``, ``"runs/s"``), a memory size (``"MB"``) or a plain count."""

    label: str
    value: float
    unit: Literal["s", "x", "items/s", "req/s", "runs/s", "MB", "count"]

    def formatted(self) -> str:
        if self.unit == "s":
            return f"{self.value * 1000:,.2f} ms"
        if self.unit == "x":
            return f"{self.value:,.2f}x"
        if self.unit == "MB":
            return f"{self.value:,.1f} MB"
        if self.unit == "count":
            return f"{self.value:,.0f}"
        return f"{self.value:,.0f} {self.unit}"


@dataclass(slots=True)
class Target:
    """A goal of the benchmark: ``value`` compared with ``threshold`` by ``op``."""

    label: str
    value: float
    op: Literal["<=", "<", ">="]
    threshold: float
    unit: Literal["x", "items/s", "runs/s", "count"]

    @property
    def passed(self) -> bool:
        if self.op == "<=":
            return self.value <= self.threshold
        if self.op == "<":
            return self.value < self.threshold
        return self.value >= self.threshold

    def formatted(self, number: float) -> str:
        if self.unit == "count":
            return f"{number:,.0f}"
        return f"{number:,.2f}x" if self.unit == "x" else f"{number:,.0f}/s"


@dataclass(slots=True)
class BenchResult:
    """What one benchmark reports; serialised as is into ``bench/results.json``."""

    key: str
    title: str
    status: Status = "ok"
    params: dict[str, Any] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    elapsed_s: float = 0.0
    load_before: float | None = None  # 1-minute load average when the benchmark started

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["targets"] = [dict(asdict(t), passed=t.passed) for t in self.targets]
        return data


async def measure(
    variants: dict[str, AsyncFn],
    repeats: int,
    warmup: int = 1,
    cpu: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Time each variant ``repeats`` times, interleaved; return the wall-clock samples in seconds.

    When ``cpu`` is given, it receives the CPU time of this process (every thread) per sample:
    other processes on a shared machine stretch wall time much more than CPU time.
    """
    for _ in range(warmup):
        for fn in variants.values():
            await fn()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            gc.collect()
            cpu_start = time.process_time()
            start = time.perf_counter()
            await fn()
            samples[name].append(time.perf_counter() - start)
            if cpu is not None:
                cpu.setdefault(name, []).append(time.process_time() - cpu_start)
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)


async def profile_async(fn: AsyncFn, top: int = 18) -> str:
    """Run ``fn`` once under cProfile; return the ``top`` functions by own time, as text."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        await fn()
    finally:
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    return out.getvalue()


def run_async(coro: Awaitable[Any]) -> Any:
    """``asyncio.run`` for a coroutine (kept here so benchmarks share one policy)."""

    async def _main() -> Any:
        return await coro

    return asyncio.run(_main())
