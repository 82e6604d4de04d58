"""The run-listing benchmark runs end to end at its quick size (no timing asserted)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_runs_listing_benchmark_quick(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--repeats",
            "1",
            "--only",
            "runs_listing",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (bench,) = json.loads(output.read_text())["benchmarks"]
    assert bench["key"] == "runs_listing"
    assert bench["status"] == "ok", bench["error"]
    assert bench["params"] == {"runs": 20_000, "pipelines": 20, "page": 50}
    labels = [line["label"] for line in bench["lines"]]
    assert labels[0] == "bulk insert of 20,000 runs (executemany, one transaction)"
    for query in ("first page", "filtered by pipeline", "filtered by status", "deep cursor (90% down)"):
        assert f"{query}: RunRepo.list (page + total)" in labels
        assert f"{query}: raw SQL, same driver (page + total)" in labels
    assert all(math.isfinite(line["value"]) and line["value"] > 0 for line in bench["lines"])
    assert len(bench["targets"]) == 4
    assert all(isinstance(target["passed"], bool) for target in bench["targets"])
