"""The pieces of the endpoint and webhook benchmarks, each against real servers on 127.0.0.1.

The workload's pipeline gives the reference answer; the hand-written baseline gives it through
each of its HTTP clients; the load generator is bounded in count and time and counts errors;
the wrk and py-spy outputs are parsed; the Node-RED flow is the documented four-node chain.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from app.engine.types import NullObserver, RunStatus
from app.registry import Registry
from app.runtime.local import run_locally
from app.runtime.pipelines import validate_problems
from app.settings import Settings
from bench import endpoint_baseline, endpoint_load, endpoint_nodered, endpoint_profile, endpoint_upstream
from bench.endpoint_load import LoadError, parse_wrk, percentile, wrk_command
from bench.endpoint_mashpipe import _same_route
from bench.endpoint_procs import Service, ServiceFailed, free_port, proc_status_kib, python_command
from bench.endpoint_workload import (
    DEFAULT_MIN_SCORE,
    ITEM_COUNT,
    TOP,
    app_path,
    make_upstream_items,
    pipeline_yaml,
    top_items,
)
from bench.webhook_bench import hook_yaml


async def serve_app(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve an aiohttp app on a free port of 127.0.0.1; the runner and base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    return runner, f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    runner, base_url = await serve_app(endpoint_upstream.build_app())
    try:
        yield base_url
    finally:
        await runner.cleanup()


# -- the workload -----------------------------------------------------------------------------


def test_upstream_items_and_reference_answer() -> None:
    items = make_upstream_items()
    assert len(items) == ITEM_COUNT
    assert len({item["score"] for item in items}) == ITEM_COUNT  # distinct: no tie to break
    assert make_upstream_items() == items  # deterministic
    top = top_items(items)["top"]
    assert len(top) == TOP
    scores = [item["score"] for item in top]
    assert scores == sorted(scores, reverse=True)
    assert min(scores) >= DEFAULT_MIN_SCORE
    by_id = {item["id"]: item for item in items}
    for answer in top:
        source = by_id[answer["id"]]
        assert source["kind"] != "spam"
        assert answer == {
            "id": source["id"],
            "title": source["title"].upper(),
            "score": source["score"],
            "url": source["url"],
            "label": f"{source['title']} ({source['score']} points)",
        }
    assert top_items(items, 1000) == {"top": []}


async def test_pipeline_gives_the_reference_answer(upstream: str) -> None:
    settings = Settings(egress_allow="127.0.0.1/32")
    registry = Registry.load(settings)
    for cache in (None, "10m"):
        source = pipeline_yaml(f"{upstream}/items", cache=cache)
        spec, problems = validate_problems(source, registry, max_bytes=settings.max_yaml_bytes)
        assert spec is not None, problems
        assert spec.triggers[0].endpoint is not None
        assert spec.triggers[0].endpoint.cache == cache
        for min_score in (DEFAULT_MIN_SCORE, 90):
            result = await run_locally(
                spec, {"min_score": min_score}, settings, registry, observer=NullObserver()
            )
            assert result.status == RunStatus.SUCCEEDED, result.error
            assert result.outputs == top_items(make_upstream_items(), min_score)
    assert app_path() == f"/v1/apps/default/bench-top-items?min_score={DEFAULT_MIN_SCORE}"


def test_webhook_pipeline_is_valid() -> None:
    settings = Settings()
    spec, problems = validate_problems(hook_yaml("bench-hook"), Registry.load(settings), max_bytes=10_000)
    assert spec is not None, problems
    webhook = spec.triggers[0].webhook
    assert webhook is not None
    assert webhook.dedupe_header == "X-Delivery"


async def test_upstream_counts_the_lists_it_serves(upstream: str) -> None:
    async with httpx.AsyncClient() as client:
        before = (await client.get(f"{upstream}/count")).json()["served"]
        items = (await client.get(f"{upstream}/items")).json()
        after = (await client.get(f"{upstream}/count")).json()["served"]
    assert items == make_upstream_items()
    assert after == before + 1


# -- the hand-written baseline ----------------------------------------------------------------


async def test_every_baseline_route_gives_the_reference_answer(upstream: str) -> None:
    app = endpoint_baseline.create_app(f"{upstream}/items")
    expected = top_items(make_upstream_items(), 50)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://baseline") as client:
            for route in endpoint_baseline.ROUTES.values():
                response = await client.get(route, params={"min_score": 50})
                assert response.status_code == 200, route
                assert response.headers["content-type"].startswith("application/json")
                assert response.json() == expected, route
            assert (
                await client.get(endpoint_baseline.ROUTES["aiohttp"], params={"min_score": "x"})
            ).status_code == 422


# -- the load generator -----------------------------------------------------------------------


async def test_our_generator_is_bounded_in_count_and_keeps_answers() -> None:
    seen: list[tuple[str | None, bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append((request.headers.get("X-Delivery"), await request.read()))
        status = 500 if request.headers.get("X-Delivery") == "t-3" else 202
        return web.json_response({"n": len(seen)}, status=status)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner, base_url = await serve_app(app)
    try:
        result, answers = await endpoint_load.generate(
            f"{base_url}/hook",
            connections=4,
            duration=30.0,
            max_requests=25,
            method="POST",
            body='{"number": {n}}',
            content_type="application/json",
            headers={"X-Fixed": "yes"},
            unique_header="X-Delivery",
            unique_prefix="t",
            keep_answers=True,
        )
    finally:
        await runner.cleanup()
    assert result.requests == 25
    assert len(seen) == 25
    assert result.errors == 1  # the 500
    assert result.details == {"status": 1, "socket": 0, "timeout": 0}
    assert sorted(str(delivery) for delivery, _ in seen) == sorted(f"t-{n}" for n in range(25))
    assert {json.loads(body)["number"] for _, body in seen} == set(range(25))
    assert sorted(answer["number"] for answer in answers) == list(range(25))
    assert {answer["status"] for answer in answers} == {202, 500}
    assert 0 < result.p50_s <= result.p99_s <= result.max_s
    assert result.rps > 0


async def test_our_generator_is_bounded_in_time_and_counts_refused_connections() -> None:
    port = free_port()  # nothing listens there
    result, _ = await endpoint_load.generate(
        f"http://127.0.0.1:{port}/", connections=2, duration=0.3, max_requests=10**9
    )
    assert result.requests == 0
    assert result.errors > 0
    assert result.details["socket"] == result.errors


@pytest.mark.slow
def test_our_generator_runs_as_a_process(tmp_path: Path) -> None:
    port = free_port()
    upstream = Service.start(
        "upstream",
        python_command("bench.endpoint_upstream", "--port", str(port)),
        port=port,
        ready_path="/health",
        log_dir=tmp_path,
    )
    try:
        assert (upstream.rss_bytes() or 0) > 0
        assert (upstream.peak_rss_bytes() or 0) >= (upstream.rss_bytes() or 0)
        result = endpoint_load.run_load(
            f"{upstream.base_url}/items", connections=3, duration=30.0, max_requests=40, tool="python"
        )
    finally:
        upstream.stop()
    assert upstream.process.returncode is not None
    assert result.tool == "python"
    assert result.requests == 40
    assert result.errors == 0


def test_service_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(ServiceFailed, match="boom"):
        Service.start(
            "broken",
            python_command("bench.no_such_module_boom"),
            port=free_port(),
            ready_path="/",
            log_dir=tmp_path,
            timeout=30,
        )
    assert proc_status_kib(2**22 + 12345, "VmRSS") is None


WRK_OUTPUT = """\
Running 3s test @ http://127.0.0.1:8000/x
  1 threads and 50 connections
Requests/sec:   1813.31
MASHPIPE_WRK {"requests":5458,"duration_us":3009961,"bytes":8017912,"connect_errors":0,"read_errors":1,\
"write_errors":0,"status_errors":2,"timeouts":3,"p50_us":24300,"p90_us":48219,"p99_us":92712,"max_us":300978,\
"mean_us":29263.1}
"""


def test_wrk_output_is_parsed() -> None:
    result = parse_wrk(WRK_OUTPUT, 50)
    assert (result.tool, result.connections, result.requests, result.errors) == ("wrk", 50, 5458, 6)
    assert result.duration_s == pytest.approx(3.009961)
    assert (result.p50_s, result.p99_s, result.max_s) == (0.0243, 0.092712, 0.300978)
    assert result.rps == pytest.approx(5458 / 3.009961)
    with pytest.raises(LoadError, match="no result line"):
        parse_wrk("Requests/sec: 12\n", 10)
    command = wrk_command("http://127.0.0.1:1/x", 10, 2.5, 10.0)
    assert command[:4] == ["wrk", "-t1", "-c10", "-d3s"]
    assert str(endpoint_load.WRK_SCRIPT) in command
    assert endpoint_load.WRK_SCRIPT.exists()


def test_percentiles_and_tool_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([], 0.5) == 0.0
    monkeypatch.setenv("MASHPIPE_BENCH_LOADGEN", "python")
    assert endpoint_load.default_tool() == "python"
    monkeypatch.setenv("MASHPIPE_BENCH_LOADGEN", "ab")
    with pytest.raises(LoadError, match="wrk or python"):
        endpoint_load.default_tool()


# -- profile, routes, Node-RED ----------------------------------------------------------------

MAIN = "thread (1): MainThread;run (uvicorn/main.py:1)"
RAW_PROFILE = "\n".join(
    [
        f"{MAIN};RunService.create_run (app/runtime/service.py:80);execute (sqlalchemy/engine/base.py:10) 30",
        f"{MAIN};execute_plan (app/engine/x.py:5);get_json (connectors/http/a.py:8);send (httpx/_c.py:3) 50",
        f"{MAIN};send (uvicorn/protocols/http/httptools_impl.py:2) 20",
        "thread (2): Thread-1;run (threading.py:1);_execute (aiosqlite/core.py:5) 100",
        "garbage line",
    ]
)


def test_profile_summary() -> None:
    profile = endpoint_profile.summarize(RAW_PROFILE)
    assert profile.samples == 200
    areas = dict(profile.by_area)
    assert areas["aiosqlite + sqlite3"] == 0.5
    assert areas["httpx"] == 0.25
    assert areas["SQLAlchemy"] == 0.15
    assert areas["uvicorn"] == 0.10
    markers = dict(profile.markers)  # shares of the main thread's 100 samples
    assert markers["recording a queued run (create_run)"] == 0.30
    assert markers["engine execute (steps, incl. the HTTP call)"] == 0.50
    assert markers["the http.get_json step"] == 0.50
    assert dict(profile.threads) == {"thread (1): MainThread": 0.5, "thread (2): Thread-1": 0.5}
    text = endpoint_profile.render(profile, "a server")
    assert "200 samples" in text
    assert "50.0%  aiosqlite + sqlite3" in text


def test_route_matching_ignores_parameter_names() -> None:
    assert _same_route("/v1/apps/{account}/{name}", "/v1/apps/{account_name}/{pipeline}")
    assert _same_route("/v1/hooks/{hook_id}", "/v1/hooks/{id}")
    assert not _same_route("/v1/hooks/{hook_id}", "/v1/hooks")
    assert not _same_route("/v1/apps/{account}/{name}", "/v1/pipelines/{name}/runs")


def test_node_red_flow_is_the_documented_chain() -> None:
    nodes = {node["id"]: node for node in endpoint_nodered.flow_nodes()}
    chain: list[dict[str, Any]] = []
    node = next(n for n in nodes.values() if n["type"] == "http in" and n["url"] == endpoint_nodered.ROUTE)
    while True:
        chain.append(node)
        wires = node.get("wires") or [[]]
        if not wires[0]:
            break
        node = nodes[wires[0][0]]
    assert [n["type"] for n in chain] == ["http in", "http request", "function", "http response"]
    http_in, request, function, _ = chain
    assert http_in["method"] == "get"
    assert request["url"] == "${UPSTREAM_URL}"  # Node-RED substitutes the environment variable
    assert request["ret"] == "obj"  # parsed JSON
    assert request["persist"] is True  # keep-alive, like the other servers' clients
    source = function["func"]
    for fragment in (
        "min_score",
        ".filter(",
        "item.kind !== 'spam'",
        "toUpperCase()",
        ".sort(",
        ".slice(0, 10)",
    ):
        assert fragment in source
    assert "msg.headers = {}" in source  # the upstream's headers are not copied into the answer
    settings = endpoint_nodered.SETTINGS_FILE.read_text(encoding="utf-8")
    for fragment in (
        'uiHost: "127.0.0.1"',
        "httpAdminRoot: false",
        "disableEditor: true",
        "NODE_RED_BENCH_PORT",
    ):
        assert fragment in settings


def test_node_red_missing_is_explained(tmp_path: Path) -> None:
    found = endpoint_nodered.ensure_node_red(install=False, cache_dir=tmp_path / "empty")
    assert not found.available
    assert found.reason  # Node.js missing, too old, or node-red not installed in the cache
    assert endpoint_nodered.installed_version(tmp_path / "empty") is None
    with pytest.raises(RuntimeError, match="not available"):
        endpoint_nodered.start_node_red(found, "http://127.0.0.1:1/items", tmp_path)


async def test_run_fast_uses_an_event_loop() -> None:
    from bench.endpoint_procs import run_fast

    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert await asyncio.to_thread(run_fast, answer()) == 42


async def test_our_generator_sends_lost_or_failed_requests_again() -> None:
    tries: dict[str, int] = {}

    async def hook(request: web.Request) -> web.Response:
        delivery = request.headers["X-Delivery"]
        tries[delivery] = tries.get(delivery, 0) + 1
        if delivery == "r-1" and tries[delivery] == 1:
            return web.json_response({"error": "busy"}, status=503)
        return web.json_response({"run_id": delivery}, status=202)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner, base_url = await serve_app(app)
    try:
        result, answers = await endpoint_load.generate(
            f"{base_url}/hook",
            connections=2,
            duration=30.0,
            max_requests=4,
            method="POST",
            unique_header="X-Delivery",
            unique_prefix="r",
            keep_answers=True,
            retries=2,
        )
    finally:
        await runner.cleanup()
    assert tries == {"r-0": 1, "r-1": 2, "r-2": 1, "r-3": 1}
    by_number = {answer["number"]: answer for answer in answers}
    assert by_number[1]["status"] == 202
    assert by_number[1]["tries"] == 2
    assert {answer["tries"] for number, answer in by_number.items() if number != 1} == {1}
    assert result.details["retried"] == 1
    assert result.errors == 1  # the 503 still counts as an error


async def test_hot_cache_serves_fresh_public_answers_only() -> None:
    from bench.endpoint_whatif import HotCache

    calls: list[str] = []
    now = [100.0]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"] + "?" + scope["query_string"].decode())
        control = b"private, max-age=60" if "private" in scope["path"] else b"public, max-age=60"
        headers = [(b"content-type", b"application/json"), (b"cache-control", control), (b"etag", b'"e1"')]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"n": %d}' % len(calls)})

    cache = HotCache(app, clock=lambda: now[0])

    async def get(path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> Any:
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "query_string": query,
            "headers": headers or [],
        }
        await cache(scope, receive, send)
        return dict(sent[0]["headers"]), sent[1]["body"]

    first = await get("/v1/apps/a/p", b"x=1")
    now[0] += 10
    second = await get("/v1/apps/a/p", b"x=1")
    assert first[1] == second[1] == b'{"n": 1}'
    assert second[0][b"cache-control"] == b"public, max-age=50"
    assert second[0][b"etag"] == b'"e1"'
    await get("/v1/apps/a/p", b"x=2")  # another query: another entry
    await get("/v1/apps/a/p", b"x=1", [(b"if-none-match", b'"e1"')])  # revalidation: the app answers
    await get("/v1/apps/a/private")
    await get("/v1/apps/a/private")  # private: never kept
    await get("/v1/pipelines/p")  # not an app: passed through
    now[0] += 60
    await get("/v1/apps/a/p", b"x=1")  # expired
    assert calls == [
        "/v1/apps/a/p?x=1",
        "/v1/apps/a/p?x=2",
        "/v1/apps/a/p?x=1",
        "/v1/apps/a/private?",
        "/v1/apps/a/private?",
        "/v1/pipelines/p?",
        "/v1/apps/a/p?x=1",
    ]


def test_the_cpu_of_threads_that_ended_stays_counted() -> None:
    import os
    import threading
    import time

    from bench.endpoint_profile import thread_cpu

    def spin() -> None:
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass

    before = thread_cpu(os.getpid())
    worker = threading.Thread(target=spin)
    worker.start()
    worker.join()  # ended before the second reading: its time must not vanish
    after = thread_cpu(os.getpid())
    other = "other threads (mashpipe: aiosqlite...)"
    assert after[other] - before[other] > 0.1
    assert all(value >= 0 for value in after.values())
