"""``python -m bench --quick`` runs every benchmark end to end, so the benchmarks cannot rot.

No timing is asserted: only that each benchmark ran, checked its engine output against its
baseline (a mismatch is a crash), and reported finite numbers and a PASS/MISS verdict per target.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The engine and runtime benchmarks (other benchmarks registered in the harness have their own tests).
EXPECTED = ["engine_overhead", "for_each", "list_steps", "persistence"]


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


@pytest.mark.slow
def test_quick_run_reports_every_benchmark(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    done = run_bench("--quick", "--repeats", "1", "--only", *EXPECTED, "--output", str(output))
    assert done.returncode == 0, done.stdout + done.stderr

    document = json.loads(output.read_text())
    results = {bench["key"]: bench for bench in document["benchmarks"]}
    assert list(results) == EXPECTED
    for key, bench in results.items():
        assert bench["status"] == "ok", f"{key}: {bench['error']}"
        assert bench["lines"], key
        for line in bench["lines"]:
            assert math.isfinite(line["value"]), (key, line)
        for samples in bench["samples"].values():
            assert len(samples) == 1
            assert all(value > 0 for value in samples)
    # Every benchmark with a goal reports a verdict, in the JSON and in the printed table.
    assert {key for key, bench in results.items() if bench["targets"]} == {
        "for_each",
        "list_steps",
        "persistence",
    }
    assert len(results["list_steps"]["targets"]) == 4
    verdicts = [target["passed"] for bench in results.values() for target in bench["targets"]]
    assert all(isinstance(verdict, bool) for verdict in verdicts)
    assert document["summary"]["passed"] + document["summary"]["missed"] == len(verdicts)
    printed_verdicts = done.stdout.count(" PASS") + done.stdout.count(" MISS")
    assert printed_verdicts >= len(verdicts)


@pytest.mark.slow
def test_only_runs_the_named_benchmark(tmp_path: Path) -> None:
    output = tmp_path / "only.json"
    done = run_bench("--quick", "--repeats", "1", "--only", "engine_overhead", "--output", str(output))
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(output.read_text())
    assert [bench["key"] for bench in document["benchmarks"]] == ["engine_overhead"]


def test_bad_arguments_exit_2() -> None:
    done = run_bench("--only", "nonsense")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr
