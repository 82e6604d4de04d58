"""Benchmark: the published endpoint under closed-loop load, against a hand-written endpoint and Node-RED.

Every server runs in its own process on 127.0.0.1 and reads the same upstream (its own process):

* Mashpipe: ``mashpipe serve`` (uvicorn, SQLite file, egress allowlist 127.0.0.1) serving the
  pipeline of :mod:`bench.endpoint_workload` at ``GET /v1/apps/default/<name>?min_score=20``, with
  the endpoint cache off and on (two pipelines, same steps); every uncached request is a recorded
  run. In full mode a second server uses the other outbound transport (``httpx`` / ``aiohttp``).
* The hand-written endpoint (:mod:`bench.endpoint_baseline`): FastAPI + aiohttp + orjson is the
  reference; FastAPI's default JSON encoding, plain httpx and httpx over the aiohttp transport are
  measured too (full mode), to show what the client path and the JSON encoding cost.
* Node-RED 4.1 (:mod:`bench.endpoint_nodered`), full mode only: http in -> http request ->
  function -> http response.

First every server's answer is checked against the reference (:func:`top_items`): a ratio between
different answers would mean nothing. Then, for 10 and 50 connections, every variant is loaded in
turn (interleaved trials, after a warm-up) with wrk or our generator (:mod:`bench.endpoint_load`);
the median of the trials is reported: requests/s, p50 and p99 latency, the server's CPU time per
answer (user + system, all threads: robust to a busy machine, unlike requests/s); RSS per server
process.
``--quick`` (the smoke test) runs Mashpipe (cache off and on) and the reference only, briefly.
A py-spy profile of the Mashpipe server under load is added in full mode and with ``--profile``;
the function calls and SQL statements per request (:mod:`bench.endpoint_calls`, counts that do not
move with the machine's load) always.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import tempfile
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from bench import endpoint_calls, endpoint_profile
from bench.endpoint_baseline import ROUTES
from bench.endpoint_load import LoadResult, Tool, default_tool, run_load
from bench.endpoint_mashpipe import APPS_ROUTE, MashpipeServer, start_mashpipe
from bench.endpoint_nodered import ROUTE as NODE_RED_ROUTE
from bench.endpoint_nodered import ensure_node_red, start_node_red
from bench.endpoint_procs import Service, free_port, python_command
from bench.endpoint_workload import (
    CACHE_DURATION,
    DEFAULT_MIN_SCORE,
    PIPELINE,
    PIPELINE_CACHED,
    UPSTREAM_PATH,
    app_path,
    make_upstream_items,
    pipeline_yaml,
    top_items,
)
from bench.harness import BenchConfig, BenchResult, Line, Target

KEY = "endpoint"
TITLE = "Published endpoint GET /v1/apps/... vs FastAPI + aiohttp vs Node-RED 4.1, closed-loop load"
CONNECTIONS = (10, 50)
TARGET_VS_NODE_RED = 1.2
TARGET_VS_AIOHTTP = 0.9
TARGET_CACHED_VS_NODE_RED = 5.0
MAX_ERROR_SHARE = 0.01
MB = 1024 * 1024
SHORT = {  # the secondary variants, in the ratio lines
    "mashpipe-aiohttp": "Mashpipe, aiohttp transport",
    "mashpipe-httpx": "Mashpipe, httpx transport",
    "whatif-norecord-httpx": "what-if no run record (httpx)",
    "whatif-norecord-aiohttp": "what-if no run record (aiohttp)",
    "whatif-hot-cache": "what-if hot cache",
    "aiohttp-stdjson": "FastAPI default JSON",
    "httpx": "FastAPI + httpx",
    "httpx-aiohttp": "FastAPI + httpx-aiohttp",
}


@dataclass(frozen=True, slots=True)
class Variant:
    """One thing loaded: a URL of one server process."""

    key: str
    label: str
    server: str
    url: str
    primary: bool = True  # measured in every trial (secondary ones: in the first trial only)


@dataclass(frozen=True, slots=True)
class Sizes:
    duration: float  # seconds per trial
    trials: int
    warmup: float  # seconds of load per variant before the trials
    full: bool  # every variant, Node-RED included


def sizes_for(config: BenchConfig) -> Sizes:
    if config.quick:
        return Sizes(duration=1.0, trials=1, warmup=1.0, full=False)
    return Sizes(duration=3.0, trials=min(config.repeats, 3), warmup=2.0, full=True)


async def run(config: BenchConfig) -> BenchResult:
    return await asyncio.to_thread(run_sync, config)


def run_sync(config: BenchConfig) -> BenchResult:
    """The benchmark, start to end (blocking: servers and load generators are subprocesses)."""
    sizes = sizes_for(config)
    tool = default_tool()
    result = BenchResult(
        KEY,
        TITLE,
        params={
            "connections": list(CONNECTIONS),
            "trial_s": sizes.duration,
            "trials": sizes.trials,
            "load_generator": tool,
            "upstream_items": len(make_upstream_items()),
        },
    )
    with (
        tempfile.TemporaryDirectory(prefix="mashpipe-bench-endpoint-") as folder,
        contextlib.ExitStack() as stack,
    ):
        work = Path(folder)
        if tool == "python" and shutil.which("wrk") is None:
            result.notes.append(
                "WRK NOT INSTALLED (apt-get install -y wrk): the load comes from our generator "
                "(bench/endpoint_load.py), which takes more of the machine's CPU per request than wrk"
            )
        servers, mashpipes, variants = start_everything(work, sizes, stack, result)
        check_answers(variants, result)

        def load(variant: Variant, connections: int, duration: float) -> LoadResult:
            service = servers[variant.server]
            cpu_before = service.cpu_seconds()
            measured = run_load(
                variant.url, connections=connections, duration=duration, max_requests=10**9, tool=tool
            )
            # Runs a load started go on after it ends: let them finish before measuring anything else.
            if variant.server in mashpipes:
                mashpipes[variant.server].wait_idle()
            cpu_after = service.cpu_seconds()
            if cpu_before is not None and cpu_after is not None and measured.requests:
                measured.details["server_cpu_per_answer_s"] = (cpu_after - cpu_before) / measured.requests
            return measured

        for variant in variants:  # warm-up: JIT, caches, connection pools
            load(variant, max(CONNECTIONS), sizes.warmup)
        by_variant: dict[tuple[str, int], list[LoadResult]] = {}
        rss: dict[tuple[str, int], float] = {}
        upstream = servers["upstream"]
        cached_upstream_calls = 0
        for connections in CONNECTIONS:
            for trial in range(sizes.trials):
                for variant in variants:
                    if trial and not variant.primary:
                        continue
                    before = upstream_count(upstream) if variant.key == "mashpipe-cached" else 0
                    measured = load(variant, connections, sizes.duration)
                    if variant.key == "mashpipe-cached":
                        cached_upstream_calls += upstream_count(upstream) - before
                    check_load(variant, measured)
                    by_variant.setdefault((variant.key, connections), []).append(measured)
            for name, service in servers.items():
                service.check_alive()
                rss[(name, connections)] = (service.rss_bytes() or 0) / MB
        peak = {name: (service.peak_rss_bytes() or 0) / MB for name, service in servers.items()}
        if config.profile or sizes.full:
            mashpipe = next(v for v in variants if v.key == "mashpipe")
            result.notes.append(profile_under_load(servers[mashpipe.server], mashpipe.url, work, tool))
        upstream_url = upstream.base_url + UPSTREAM_PATH
        counted = asyncio.run(endpoint_calls.measure(upstream_url, requests=10 if config.quick else 50))
    report(result, variants, by_variant, rss, peak, sizes, cached_upstream_calls)
    for scenario in counted:
        result.lines.append(Line(f"calls/req: {scenario.name}", scenario.total, "count"))
    result.notes.append(endpoint_calls.render(counted))
    return result


def start_everything(
    work: Path, sizes: Sizes, stack: contextlib.ExitStack, result: BenchResult
) -> tuple[dict[str, Service], dict[str, MashpipeServer], list[Variant]]:
    """Start the upstream and every server; save the pipelines; the server processes by name, the
    Mashpipe servers by name, and the variants to load (primary ones first)."""
    from app.settings import Settings

    port = free_port()
    upstream = Service.start(
        "upstream",
        python_command("bench.endpoint_upstream", "--port", str(port)),
        port=port,
        ready_path="/health",
        log_dir=work,
    )
    stack.callback(upstream.stop)
    upstream_url = upstream.base_url + UPSTREAM_PATH
    servers: dict[str, Service] = {"upstream": upstream}
    mashpipes: dict[str, MashpipeServer] = {}
    primary: list[Variant] = []
    secondary: list[Variant] = []

    def mashpipe(name: str, transport: str, whatif: tuple[str, ...] = ()) -> str:
        server = start_mashpipe(work, name=name.replace(" ", "-"), transport=transport, whatif=whatif)
        stack.callback(server.service.stop)
        server.require_routes(APPS_ROUTE)
        save_pipelines(server, upstream_url)
        servers[name] = server.service
        mashpipes[name] = server
        return server.base_url

    default = str(Settings.model_fields["http_transport"].default)
    other = "aiohttp" if default == "httpx" else "httpx"
    base = mashpipe("mashpipe", default)
    label = f"Mashpipe ({default} transport, the default)"
    primary.append(Variant("mashpipe", f"{label}, cache off", "mashpipe", base + app_path()))
    primary.append(
        Variant("mashpipe-cached", f"{label}, cache on", "mashpipe", base + app_path(PIPELINE_CACHED))
    )
    if sizes.full:
        url = mashpipe(f"mashpipe {other}", other) + app_path()
        secondary.append(
            Variant(f"mashpipe-{other}", f"Mashpipe ({other} transport), cache off", f"mashpipe {other}", url)
        )
        for transport in (default, other):
            name = f"what-if no-record {transport}"
            url = mashpipe(name, transport, ("--no-record",)) + app_path()
            label = f"what if endpoint runs were not recorded ({transport} transport)"
            secondary.append(Variant(f"whatif-norecord-{transport}", label, name, url))
        url = mashpipe("what-if hot cache", default, ("--hot-cache",)) + app_path(PIPELINE_CACHED)
        label = "what if cache hits were served before routing, cache on"
        secondary.append(Variant("whatif-hot-cache", label, "what-if hot cache", url))

    port = free_port()
    baseline = Service.start(
        "fastapi-baseline",
        python_command("bench.endpoint_baseline", "--port", str(port), "--upstream", upstream_url),
        port=port,
        ready_path="/health",
        log_dir=work,
    )
    stack.callback(baseline.stop)
    servers["FastAPI baseline"] = baseline
    query = f"?min_score={DEFAULT_MIN_SCORE}"
    reference = baseline.base_url + ROUTES["aiohttp"] + query
    primary.append(
        Variant("aiohttp", "FastAPI + aiohttp + orjson (hand-written)", "FastAPI baseline", reference)
    )
    if sizes.full:
        for key, label in (
            ("aiohttp-stdjson", "FastAPI + aiohttp, FastAPI's default JSON"),
            ("httpx", "FastAPI + httpx (default transport)"),
            ("httpx-aiohttp", "FastAPI + httpx on httpx-aiohttp"),
        ):
            secondary.append(Variant(key, label, "FastAPI baseline", baseline.base_url + ROUTES[key] + query))
        found = ensure_node_red()
        if found.available:
            node_red = start_node_red(found, upstream_url, work)
            stack.callback(node_red.stop)
            servers["Node-RED"] = node_red
            url = node_red.base_url + NODE_RED_ROUTE + query
            primary.append(Variant("node-red", "Node-RED 4.1.15 flow", "Node-RED", url))
        else:
            result.notes.append(
                f"NODE-RED NOT MEASURED: {found.reason}. Its ratios and targets are left out."
            )
    else:
        result.notes.append(
            "quick mode: Node-RED and the secondary variants are not run (full run: make bench)"
        )
    return servers, mashpipes, [*primary, *(replace(v, primary=False) for v in secondary)]


def save_pipelines(server: MashpipeServer, upstream_url: str) -> None:
    """The benchmark's pipeline, without and with the endpoint cache."""
    server.save_pipeline(PIPELINE, pipeline_yaml(upstream_url, name=PIPELINE))
    server.save_pipeline(
        PIPELINE_CACHED, pipeline_yaml(upstream_url, name=PIPELINE_CACHED, cache=CACHE_DURATION)
    )


def fetch(url: str) -> tuple[int, str, bytes]:
    """GET ``url``: status, content type, body."""
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.headers.get("content-type", ""), response.read()


def check_answers(variants: list[Variant], result: BenchResult) -> None:
    """Every variant answers 200 with JSON equal to the reference; notes which are byte-identical."""
    expected = top_items(make_upstream_items(), DEFAULT_MIN_SCORE)
    bodies: dict[str, bytes] = {}
    for variant in variants:
        status, content_type, body = fetch(variant.url)
        if status != 200 or "json" not in content_type:
            raise AssertionError(f"{variant.label} answered {status} {content_type}: {body[:300]!r}")
        answer = json.loads(body)
        if answer != expected:
            raise AssertionError(
                f"{variant.label} answers different JSON than the reference:\n{body[:600]!r}\n"
                f"expected {json.dumps(expected)[:600]}"
            )
        bodies[variant.key] = body
    groups: dict[bytes, list[str]] = {}
    for key, body in bodies.items():
        groups.setdefault(body, []).append(key)
    layout = (
        "byte-identical"
        if len(groups) == 1
        else f"{len(groups)} byte layouts: " + "; ".join(", ".join(keys) for keys in groups.values())
    )
    result.notes.append(
        f"identical JSON: all {len(variants)} variants answer the reference "
        f"{{top: [{len(expected['top'])} items]}} ({layout})"
    )


def check_load(variant: Variant, load: LoadResult) -> None:
    """A run with errors or nothing answered measures nothing: the benchmark fails."""
    if load.requests == 0:
        raise AssertionError(f"{variant.label}: no answer at {load.connections} connections ({load.details})")
    share = min(1.0, load.errors / max(1, load.requests))
    if share > MAX_ERROR_SHARE:
        raise AssertionError(
            f"{variant.label}: {load.errors} errors out of {load.requests} answers at {load.connections} "
            f"connections ({share:.1%} > {MAX_ERROR_SHARE:.0%}): {load.details}"
        )


def upstream_count(upstream: Service) -> int:
    """How many lists the upstream has served."""
    _, _, body = fetch(upstream.base_url + "/count")
    served: int = json.loads(body)["served"]
    return served


def profile_under_load(service: Service, url: str, work: Path, tool: Tool) -> str:
    """Sample the server with py-spy while it is under load at the highest concurrency."""
    seconds = 4.0

    def load() -> LoadResult:
        connections = max(CONNECTIONS)
        return run_load(url, connections=connections, duration=seconds + 2, max_requests=10**9, tool=tool)

    title = f"{service.name} at {max(CONNECTIONS)} connections, cache off"
    return endpoint_profile.profile_while(service.pid, work / "profile.txt", load, title, seconds)


def report(
    result: BenchResult,
    variants: list[Variant],
    runs: dict[tuple[str, int], list[LoadResult]],
    rss: dict[tuple[str, int], float],
    peak: dict[str, float],
    sizes: Sizes,
    cached_upstream_calls: int,
) -> None:
    """Lines (per variant and concurrency), ratios, targets, RSS."""
    rps: dict[tuple[str, int], float] = {}
    for (key, connections), loads in runs.items():
        rps[(key, connections)] = statistics.median(load.rps for load in loads)
        result.samples[f"{key} c={connections} req/s"] = [load.rps for load in loads]
    keys = {variant.key for variant in variants}
    for connections in CONNECTIONS:
        for variant in variants:
            loads = runs[(variant.key, connections)]
            prefix = f"c={connections} {variant.label}"
            result.lines.append(Line(prefix, rps[(variant.key, connections)], "req/s"))
            result.lines.append(Line("    p50 latency", statistics.median(x.p50_s for x in loads), "s"))
            result.lines.append(Line("    p99 latency", statistics.median(x.p99_s for x in loads), "s"))
            cpu = [
                x.details["server_cpu_per_answer_s"] for x in loads if "server_cpu_per_answer_s" in x.details
            ]
            if cpu:
                result.lines.append(Line("    server CPU time per answer", statistics.median(cpu), "s"))

        def ratio(a: str, b: str, c: int = connections) -> float:
            return rps[(a, c)] / rps[(b, c)]

        result.lines.append(
            Line(
                f"c={connections} Mashpipe cache off / hand-written aiohttp",
                ratio("mashpipe", "aiohttp"),
                "x",
            )
        )
        result.targets.append(
            Target(
                f"c={connections} cache off / FastAPI+aiohttp",
                ratio("mashpipe", "aiohttp"),
                ">=",
                TARGET_VS_AIOHTTP,
                "x",
            )
        )
        for variant in variants:
            if variant.key in ("mashpipe", "mashpipe-cached", "aiohttp", "node-red"):
                continue
            short = SHORT.get(variant.key, variant.key)
            result.lines.append(
                Line(f"c={connections} {short} / hand-written aiohttp", ratio(variant.key, "aiohttp"), "x")
            )
            if variant.key == "whatif-hot-cache" and "node-red" in keys:
                result.lines.append(
                    Line(f"c={connections} {short} / Node-RED", ratio(variant.key, "node-red"), "x")
                )
        result.lines.append(
            Line(f"c={connections} Mashpipe cache on / cache off", ratio("mashpipe-cached", "mashpipe"), "x")
        )
        if "node-red" in keys:
            result.lines.append(
                Line(f"c={connections} hand-written aiohttp / Node-RED", ratio("aiohttp", "node-red"), "x")
            )
            result.targets.append(
                Target(
                    f"c={connections} cache off / Node-RED",
                    ratio("mashpipe", "node-red"),
                    ">=",
                    TARGET_VS_NODE_RED,
                    "x",
                )
            )
            result.targets.append(
                Target(
                    f"c={connections} cache on / Node-RED",
                    ratio("mashpipe-cached", "node-red"),
                    ">=",
                    TARGET_CACHED_VS_NODE_RED,
                    "x",
                )
            )
    measured = [name for name in peak if name != "upstream" and not name.startswith("what-if")]
    for name in measured:
        for connections in CONNECTIONS:
            result.lines.append(
                Line(f"RSS of {name} after the c={connections} trials", rss[(name, connections)], "MB")
            )
        result.lines.append(Line(f"peak RSS of {name}", peak[name], "MB"))
    cached_requests = sum(load.requests for c in CONNECTIONS for load in runs[("mashpipe-cached", c)])
    result.notes.append(
        f"cache on: {cached_requests:,} answers cost {cached_upstream_calls} upstream calls "
        f"(cache: {CACHE_DURATION}); trials of {sizes.duration:.0f} s, median of {sizes.trials} "
        f"(secondary variants: 1); load generator: {next(iter(runs.values()))[0].tool}"
    )
