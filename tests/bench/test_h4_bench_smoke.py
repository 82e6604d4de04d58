"""``python -m bench --quick --only endpoint webhook``: both benchmarks run end to end, tiny sizes.

Real processes throughout: the upstream, ``mashpipe serve`` on a SQLite file, the hand-written
FastAPI endpoint, the load generator (wrk when installed, else ours). Node-RED is not part of the
quick mode (the full run installs and measures it). No timing is asserted: only that every
server gave the reference JSON, every load answered, the deliveries were recorded exactly once,
and each target got a verdict.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_endpoint_and_webhook_benchmarks(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    command = [sys.executable, "-m", "bench", "--quick", "--repeats", "1", "--only", "endpoint", "webhook"]
    done = subprocess.run(
        [*command, "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(output.read_text())
    results = {bench["key"]: bench for bench in document["benchmarks"]}
    assert list(results) == ["endpoint", "webhook"]
    for key, bench in results.items():
        assert bench["status"] == "ok", f"{key}: {bench['error']}"
        for line in bench["lines"]:
            assert math.isfinite(line["value"]), (key, line)
        assert all(isinstance(target["passed"], bool) for target in bench["targets"])

    endpoint = results["endpoint"]
    labels = [line["label"] for line in endpoint["lines"]]
    for connections in (10, 50):
        for variant in ("cache off", "cache on", "FastAPI + aiohttp + orjson (hand-written)"):
            rate = next(
                line
                for line in endpoint["lines"]
                if line["label"].startswith(f"c={connections} ") and variant in line["label"]
            )
            assert rate["unit"] == "req/s"
            assert rate["value"] > 0
    assert any(label.startswith("RSS of mashpipe") for label in labels)
    assert any(label.startswith("RSS of FastAPI baseline") for label in labels)
    assert [target["label"] for target in endpoint["targets"]] == [
        "c=10 cache off / FastAPI+aiohttp",
        "c=50 cache off / FastAPI+aiohttp",
    ]
    notes = "\n".join(endpoint["notes"])
    assert "identical JSON: all 3 variants answer the reference" in notes
    assert "Node-RED" in notes  # says that the quick mode leaves it out
    assert all(len(samples) == 1 and samples[0] > 0 for samples in endpoint["samples"].values())

    webhook = results["webhook"]
    values = {line["label"]: line["value"] for line in webhook["lines"]}
    assert values["deliveries recorded exactly once (of 100)"] == 100
    assert values["    runs lost"] == 0
    assert values["    runs recorded twice or more"] == 0
    assert values["redeliveries answered 200 + first run (of 100)"] == 100
    assert values["runs started by 20 identical concurrent deliveries"] == 1
    recorded = next(line for line in webhook["lines"] if line["label"].startswith("recorded runs/s"))
    assert recorded["value"] > 0
    assert [target["label"] for target in webhook["targets"]] == [
        "recorded runs/s at c=50",
        "100 deliveries at c=50, each once",
    ]
    assert webhook["targets"][1]["passed"] is True
