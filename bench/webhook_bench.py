"""Benchmark: webhook deliveries to a real ``mashpipe serve`` on its embedded SQLite database.

A pipeline with a ``webhook`` trigger (``dedupe_header: X-Delivery``, one ``core.set`` step
copying the delivery's number and id into its output) receives JSON deliveries
``POST /v1/hooks/{id}`` from our load generator (its own process) at 50 connections, each with a
unique ``X-Delivery`` header.

* Rate: ``N`` deliveries (3,000; 300 with ``--quick``) as fast as the server answers. Every ``202``
  means the run is recorded (committed with its delivery row); the rate is deliveries answered per
  second. Then the benchmark waits for every run to finish and reports the end-to-end rate too
  (first run created to last run finished, from the database). Target: >= 1,000 recorded runs/s.
* Exactly once: 500 deliveries at concurrency 50 (100 with ``--quick``), then the same 500 again
  (redeliveries: 200 with the first run's id, no new run), then 50 concurrent copies of one new
  delivery (one run). The SQLite file is then read directly: one run per delivery id, none lost,
  none twice, each with the delivery's own body, all succeeded.
* Recording ceiling (:mod:`bench.webhook_ceiling`, in-process): runs recorded per second on a
  fresh SQLite file by ``RunService.create_run``, by one Core insert per transaction, and by
  batches of 50 per transaction: what a group commit of deliveries would reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import endpoint_profile, webhook_ceiling
from bench.endpoint_load import LoadResult, run_ours
from bench.endpoint_mashpipe import HOOKS_ROUTE, MashpipeServer, start_mashpipe
from bench.harness import BenchConfig, BenchResult, Line, Target

KEY = "webhook"
TITLE = "Webhooks: recorded runs/s on SQLite; 500 deliveries at concurrency 50, each exactly once"
TARGET_RUNS_PER_S = 1_000.0
CONCURRENCY = 50
DEDUPE_HEADER = "X-Delivery"
BODY = '{"kind": "bench", "number": {n}}'
FINISH_TIMEOUT = 300.0
RETRIES = 3  # a lost answer or a 5xx is sent again, like GitHub or Stripe would

HOOK_YAML = """\
version: 1
name: %(name)s
description: The webhook benchmark's pipeline - one step copying the delivery into the run's output.
triggers:
  - webhook: {dedupe_header: %(header)s}
steps:
  - id: event
    uses: core.set
    with:
      value:
        number: ${{ trigger.body.number }}
        kind: ${{ trigger.body.kind }}
        delivery: ${{ trigger.headers["%(header_lower)s"] }}
outputs:
  event: ${{ steps.event.output }}
"""


@dataclass(frozen=True, slots=True)
class Sizes:
    rate_deliveries: int
    once_deliveries: int
    burst: int
    trials: int


def sizes_for(config: BenchConfig) -> Sizes:
    if config.quick:
        return Sizes(rate_deliveries=300, once_deliveries=100, burst=20, trials=1)
    return Sizes(rate_deliveries=3_000, once_deliveries=500, burst=50, trials=min(config.repeats, 3))


def hook_yaml(name: str) -> str:
    return HOOK_YAML % {"name": name, "header": DEDUPE_HEADER, "header_lower": DEDUPE_HEADER.lower()}


async def run(config: BenchConfig) -> BenchResult:
    return await asyncio.to_thread(run_sync, config)


def run_sync(config: BenchConfig) -> BenchResult:
    """The benchmark, start to end (blocking: the server and the load generator are subprocesses)."""
    sizes = sizes_for(config)
    result = BenchResult(
        KEY,
        TITLE,
        params={
            "rate_deliveries": sizes.rate_deliveries,
            "once_deliveries": sizes.once_deliveries,
            "concurrency": CONCURRENCY,
            "trials": sizes.trials,
            "database": "SQLite (embedded default)",
        },
    )
    with (
        tempfile.TemporaryDirectory(prefix="mashpipe-bench-webhook-") as folder,
        contextlib.ExitStack() as stack,
    ):
        work = Path(folder)
        server = start_mashpipe(work, name="mashpipe-webhook")
        stack.callback(server.service.stop)
        server.require_routes(HOOKS_ROUTE)
        warmup_url = save_hook(server, "bench-hook-warmup")
        deliver(warmup_url, 200, prefix="warmup", work=work)

        rates: list[LoadResult] = []
        end_to_end: list[float] = []
        cpu_per_run: list[float] = []
        for trial in range(sizes.trials):
            name = f"bench-hook-rate-{trial + 1}"
            url = save_hook(server, name)
            cpu_before = server.service.cpu_seconds()
            load, answers = deliver(url, sizes.rate_deliveries, prefix=f"rate{trial + 1}", work=work)
            refused = [answer for answer in answers if not accepted(answer)]
            if refused:
                raise AssertionError(f"{name}: {len(refused)} deliveries not accepted, e.g. {refused[0]}")
            rates.append(load)
            runs = wait_finished(server.database, name, sizes.rate_deliveries)
            end_to_end.append(sizes.rate_deliveries / span_seconds(runs))
            cpu_after = server.service.cpu_seconds()
            if cpu_before is not None and cpu_after is not None:
                cpu_per_run.append((cpu_after - cpu_before) / sizes.rate_deliveries)
            server.service.check_alive()
        once = exactly_once(server, sizes, work)
        if config.profile or not config.quick:
            result.notes.append(profile_deliveries(server, work))
        ceiling = asyncio.run(webhook_ceiling.measure(300 if config.quick else 2_000))
        size_mb = sum(path.stat().st_size for path in work.glob("mashpipe-webhook.db*")) / 1e6
        rss_mb = (server.service.peak_rss_bytes() or 0) / (1024 * 1024)

    retried_rate = sum(int(load.details.get("retried", 0)) for load in rates)
    # Deliveries accepted per second (a delivery sent again counts once).
    recorded = sorted(sizes.rate_deliveries / load.duration_s for load in rates)
    median_rate = recorded[len(recorded) // 2]
    result.samples = {
        "recorded runs/s": [sizes.rate_deliveries / load.duration_s for load in rates],
        "end-to-end runs/s": end_to_end,
    }
    middle = sorted(rates, key=lambda load: load.duration_s)[len(rates) // 2]
    result.lines = [
        Line(
            f"recorded runs/s ({sizes.rate_deliveries:,} deliveries, c={CONCURRENCY}, 202 each)",
            median_rate,
            "runs/s",
        ),
        Line("    p50 delivery latency", middle.p50_s, "s"),
        Line("    p99 delivery latency", middle.p99_s, "s"),
        Line(
            "end-to-end runs/s (first recorded -> last finished)",
            sorted(end_to_end)[len(end_to_end) // 2],
            "runs/s",
        ),
        Line("server CPU time per run (recorded and executed)", statistics.median(cpu_per_run or [0.0]), "s"),
        Line(f"deliveries recorded exactly once (of {sizes.once_deliveries})", once["exactly_once"], "count"),
        Line("    runs lost", once["lost"], "count"),
        Line("    runs recorded twice or more", once["duplicated"], "count"),
        Line(
            f"redeliveries answered 200 + first run (of {sizes.once_deliveries})",
            once["redelivered"],
            "count",
        ),
        Line(f"runs started by {sizes.burst} identical concurrent deliveries", once["burst_runs"], "count"),
        Line("deliveries sent again (lost answer, 5xx): rate", retried_rate, "count"),
        Line("deliveries sent again (lost answer, 5xx): exactly once", once["retried"], "count"),
        Line(
            "recording ceiling: RunService.create_run (in-process)",
            ceiling.service,
            "runs/s",
        ),
        Line("    Core INSERT, one transaction per run", ceiling.core_each, "runs/s"),
        Line(
            f"    Core INSERT, {ceiling.batch} runs per transaction",
            ceiling.core_batched,
            "runs/s",
        ),
        Line("peak RSS of the server", rss_mb, "MB"),
        Line("SQLite database + WAL at the end", size_mb, "MB"),
    ]
    result.targets = [
        Target(f"recorded runs/s at c={CONCURRENCY}", median_rate, ">=", TARGET_RUNS_PER_S, "runs/s"),
        Target(
            f"{sizes.once_deliveries} deliveries at c={CONCURRENCY}, each once",
            once["exactly_once"],
            ">=",
            sizes.once_deliveries,
            "count",
        ),
    ]
    return result


def save_hook(server: MashpipeServer, name: str) -> str:
    """Save a webhook pipeline; the URL of its hook."""
    view = server.save_pipeline(name, hook_yaml(name))
    hooks = view.get("hooks") or []
    if not hooks or not isinstance(hooks[0], dict) or "id" not in hooks[0]:
        raise AssertionError(f"pipeline {name} shows no hook: {view.get('hooks')!r}")
    return f"{server.base_url}/v1/hooks/{hooks[0]['id']}"


def deliver(
    url: str,
    count: int,
    *,
    prefix: str,
    work: Path,
    connections: int = CONCURRENCY,
    fixed_id: str | None = None,
) -> tuple[LoadResult, list[dict[str, Any]]]:
    """``count`` deliveries at ``connections``; every answer (number, status, body) is kept."""
    answers_file = work / f"answers-{prefix}.json"
    options: dict[str, Any] = {
        "method": "POST",
        "body": BODY,
        "content_type": "application/json",
        "answers": answers_file,
    }
    if fixed_id is None:
        options.update(unique_header=DEDUPE_HEADER, unique_prefix=prefix)
    else:
        options.update(headers={DEDUPE_HEADER: fixed_id})
    load = run_ours(
        url, connections=connections, duration=120.0, max_requests=count, retries=RETRIES, **options
    )
    answers: list[dict[str, Any]] = json.loads(answers_file.read_text(encoding="utf-8"))
    failed = [answer for answer in answers if not 200 <= answer["status"] < 300]
    if len(answers) != count or failed:
        example = f", e.g. {failed[0]}" if failed else ""
        raise AssertionError(
            f"{count} deliveries sent ({RETRIES} retries each at most): {len(answers)} answered, "
            f"{len(failed)} failed{example} ({load.details})"
        )
    return load, answers


def accepted(answer: dict[str, Any]) -> bool:
    """A first delivery is accepted with 202, or 200 when it was sent again after a lost answer
    (the first attempt was recorded: the redelivery points at its run)."""
    return bool(answer["status"] == 202 or (answer["status"] == 200 and answer["tries"] > 1))


def run_id_of(answer: dict[str, Any]) -> str:
    """The run id in a hook's answer (``{"run_id": ...}``)."""
    try:
        body = json.loads(answer["body"])
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("run_id"), str):
        raise AssertionError(
            f"delivery {answer['number']} answered {answer['status']} {answer['body'][:300]!r}"
        )
    run_id: str = body["run_id"]
    return run_id


def exactly_once(server: MashpipeServer, sizes: Sizes, work: Path) -> dict[str, int]:
    """Deliveries, redeliveries and a burst of identical deliveries; checked in the database."""
    name = "bench-hook-once"
    url = save_hook(server, name)
    count = sizes.once_deliveries
    _, first = deliver(url, count, prefix="once", work=work)
    first_runs = {answer["number"]: run_id_of(answer) for answer in first}
    bad = [answer for answer in first if not accepted(answer)]
    if bad:
        raise AssertionError(f"{len(bad)} first deliveries not accepted, e.g. {bad[0]}")
    _, again = deliver(url, count, prefix="once", work=work)
    redelivered = sum(
        1 for answer in again if answer["status"] == 200 and run_id_of(answer) == first_runs[answer["number"]]
    )
    _, burst = deliver(
        url, sizes.burst, prefix="burst", work=work, connections=sizes.burst, fixed_id="burst-0"
    )
    burst_run_ids = {run_id_of(answer) for answer in burst}
    burst_created = sum(1 for answer in burst if answer["status"] == 202)
    retried = sum(answer["tries"] - 1 for answer in [*first, *again, *burst])

    runs = wait_finished(server.database, name, count + 1)
    by_delivery: dict[str, list[dict[str, Any]]] = {}
    for row in runs:
        by_delivery.setdefault(row["delivery"], []).append(row)
    expected = {f"once-{n}": n for n in range(count)}
    lost = sum(1 for delivery in expected if delivery not in by_delivery)
    duplicated = sum(1 for rows in by_delivery.values() if len(rows) > 1)
    exactly = 0
    for delivery, number in expected.items():
        rows = by_delivery.get(delivery, [])
        if (
            len(rows) == 1
            and rows[0]["id"] == first_runs[number]
            and rows[0]["status"] == "succeeded"
            and rows[0]["output_number"] == number
        ):
            exactly += 1
    burst_rows = by_delivery.get("burst-0", [])
    if len(burst_rows) != 1 or burst_created != 1 or len(burst_run_ids) != 1:
        raise AssertionError(
            f"{sizes.burst} identical deliveries: {len(burst_rows)} runs, {burst_created} answered 202, "
            f"{len(burst_run_ids)} distinct run ids"
        )
    stray = set(by_delivery) - set(expected) - {"burst-0"}
    if stray or lost or duplicated or exactly != count or redelivered != count:
        raise AssertionError(
            f"exactly-once violated: {exactly}/{count} exactly once, {lost} lost, {duplicated} duplicated, "
            f"{len(stray)} unexpected, {redelivered}/{count} redeliveries answered with the first run"
        )
    deliveries_table = count_deliveries(server.database)
    if deliveries_table is not None and deliveries_table < count + 1:
        raise AssertionError(f"webhook_deliveries holds {deliveries_table} rows, expected >= {count + 1}")
    return {
        "exactly_once": exactly,
        "lost": lost,
        "duplicated": duplicated,
        "redelivered": redelivered,
        "burst_runs": len(burst_rows),
        "retried": retried,
    }


def _connect(database: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    connection.row_factory = sqlite3.Row
    return connection


def read_runs(database: Path, pipeline: str) -> list[dict[str, Any]]:
    """The runs of ``pipeline``, read from the SQLite file (with their delivery header and output)."""
    with contextlib.closing(_connect(database)) as connection:
        rows = connection.execute(
            "SELECT id, status, trigger, outputs, created_at, finished_at FROM runs WHERE pipeline_name = ?",
            (pipeline,),
        ).fetchall()
    runs = []
    for row in rows:
        trigger = json.loads(row["trigger"] or "{}")
        outputs = json.loads(row["outputs"] or "null") or {}
        headers = trigger.get("headers") or {}
        event = outputs.get("event") or {}
        runs.append(
            {
                "id": row["id"],
                "status": row["status"],
                "delivery": headers.get(DEDUPE_HEADER.lower()),
                "output_number": event.get("number"),
                "created_at": row["created_at"],
                "finished_at": row["finished_at"],
            }
        )
    return runs


def count_deliveries(database: Path) -> int | None:
    """Rows of ``webhook_deliveries`` (None when there is no such table)."""
    with contextlib.closing(_connect(database)) as connection:
        try:
            (count,) = connection.execute("SELECT count(*) FROM webhook_deliveries").fetchone()
        except sqlite3.OperationalError:
            return None
    return int(count)


def wait_finished(database: Path, pipeline: str, expected: int) -> list[dict[str, Any]]:
    """Wait until ``pipeline`` has ``expected`` runs, all finished; its runs."""
    deadline = time.monotonic() + FINISH_TIMEOUT
    while True:
        runs = read_runs(database, pipeline)
        pending = [run for run in runs if run["finished_at"] is None]
        if len(runs) >= expected and not pending:
            return runs
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{pipeline}: after {FINISH_TIMEOUT:.0f} s, {len(runs)} runs recorded (expected {expected}), "
                f"{len(pending)} unfinished"
            )
        time.sleep(0.05)


def span_seconds(runs: list[dict[str, Any]]) -> float:
    """From the first run's creation to the last run's end."""
    first = min(datetime.fromisoformat(str(run["created_at"])) for run in runs)
    last = max(datetime.fromisoformat(str(run["finished_at"])) for run in runs)
    return max((last - first).total_seconds(), 1e-6)


def profile_deliveries(server: MashpipeServer, work: Path) -> str:
    """A py-spy profile of the server while it takes deliveries."""
    try:
        url = save_hook(server, "bench-hook-profile")
    except Exception as exc:
        return f"no py-spy profile: {exc}"

    def load() -> LoadResult:
        return run_ours(
            url,
            connections=CONCURRENCY,
            duration=6.0,
            max_requests=10**9,
            method="POST",
            body=BODY,
            content_type="application/json",
            unique_header=DEDUPE_HEADER,
            unique_prefix="profile",
        )

    title = f"the server taking deliveries at c={CONCURRENCY}"
    return endpoint_profile.profile_while(server.service.pid, work / "webhook-profile.txt", load, title)
