"""What one request costs, counted rather than timed: function calls and SQL per request.

Timings on a shared machine move with its load; the number of function calls (cProfile counts
every Python and C function call) and of SQL statements and commits a request makes do not. This
module runs, in this process, the Mashpipe application (``create_app``, lifespan and all, on a
fresh SQLite file) and the hand-written FastAPI + aiohttp endpoint, calls them through ASGI
(no HTTP client in the way), sequentially, against the upstream (its own process), and reports
per request, for each scenario:

* calls in total and by area (SQLAlchemy, the engine, FastAPI...), the whole process included:
  the run executes in the background queue worker, and its steps' states are written behind it;
* SQL statements by kind and commits (Mashpipe only).

Scenarios: the published endpoint with the cache off (a recorded run per request) and on (a hit),
a webhook delivery (its run executed too), and the hand-written endpoint.
"""

from __future__ import annotations

import asyncio
import collections
import cProfile
import json
import os
import pstats
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.endpoint_workload import PIPELINE, PIPELINE_CACHED, app_path, pipeline_yaml

KEY = "mp_bench_calls_0123456789abcdef"
AREAS: tuple[tuple[str, str], ...] = (
    ("sqlalchemy", "SQLAlchemy"),  # first: sqlalchemy/connectors/ is not a Mashpipe connector
    ("/app/engine/", "engine"),
    ("/app/pipelines/", "expressions, specs"),
    ("/app/runtime/", "runtime"),
    ("/app/storage/", "storage (repositories)"),
    ("/app/api/", "API routers"),
    ("/app/sdk/", "connector SDK"),
    ("/app/security/", "egress guard"),
    ("/connectors/", "connectors"),
    ("/bench/", "hand-written endpoint"),
    ("/app/", "other app code"),
    ("aiosqlite", "aiosqlite"),
    ("httpx_aiohttp", "httpx-aiohttp"),
    ("httpx", "httpx"),
    ("httpcore", "httpcore"),
    ("anyio", "anyio"),
    ("aiohttp", "aiohttp"),
    ("starlette", "starlette"),
    ("fastapi", "FastAPI"),
    ("pydantic", "pydantic"),
    ("asyncio", "asyncio"),
    ("importlib", "imports"),
)


@dataclass(slots=True)
class Counted:
    """The counts of one scenario, per request."""

    name: str
    requests: int
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    sql: collections.Counter[str] = field(default_factory=collections.Counter)
    commits: int = 0

    @property
    def total(self) -> float:
        return sum(self.calls.values()) / self.requests


def area_of(filename: str) -> str:
    """The area of a profiled function's file ('~' is a C function called directly)."""
    if filename == "~":
        return "C functions (builtins)"
    for fragment, area in AREAS:
        if fragment in filename:
            return area
    return "other (stdlib...)"


async def asgi_call(
    app: Any, method: str, path: str, body: bytes = b"", headers: tuple[Any, ...] = ()
) -> tuple[int, bytes]:
    """One request straight through the ASGI interface: status and body (raises on >= 400)."""
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"bench"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("bench", 80),
        "app": app,
    }
    delivered = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    answer = b"".join(chunks)
    if status >= 400:
        raise AssertionError(f"{method} {path} answered {status}: {answer[:300]!r}")
    return status, answer


async def count(
    name: str, call: Callable[[], Awaitable[Any]], requests: int, settle: Callable[[], Awaitable[None]]
) -> Counted:
    """Profile ``requests`` sequential calls (and what they leave running, until ``settle``)."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        for _ in range(requests):
            await call()
        await settle()
    finally:
        profiler.disable()
    counted = Counted(name, requests)
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _, _), (_, calls, _, _, _) in stats.items():
        counted.calls[area_of(filename)] += calls
    return counted


async def mashpipe_scenarios(upstream_url: str, requests: int) -> list[Counted]:
    """The endpoint (cache off, cache on) and a webhook delivery on an in-process Mashpipe app."""
    from sqlalchemy import event

    from app.main import create_app
    from app.settings import Settings

    with tempfile.TemporaryDirectory(prefix="mashpipe-bench-calls-") as folder:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{Path(folder) / 'calls.db'}",
            bootstrap_key=KEY,
            secret_key=os.urandom(24).hex(),
            egress_allow="127.0.0.1/32",
            public_rate_limit="",
            api_rate_limit="",
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            state = app.state.mashpipe
            auth = (b"authorization", f"Bearer {KEY}".encode())
            yaml_type = (b"content-type", b"application/yaml")
            for name, cache in ((PIPELINE, None), (PIPELINE_CACHED, "10m")):
                source = pipeline_yaml(upstream_url, name=name, cache=cache).encode()
                await asgi_call(app, "PUT", f"/v1/pipelines/{name}", source, (auth, yaml_type))
            hook_id = await _hook(app, auth, yaml_type)
            counters: dict[str, collections.Counter[str]] = {"sql": collections.Counter()}
            commits = [0]

            def on_sql(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                counters["sql"][statement.split(None, 1)[0].upper()] += 1

            def on_commit(conn: Any) -> None:
                commits[0] += 1

            engine = state.db.engine.sync_engine
            event.listen(engine, "before_cursor_execute", on_sql)
            event.listen(engine, "commit", on_commit)

            async def settle() -> None:
                await state.queue.join()  # every run handled
                await asyncio.sleep(0.05)  # step states written behind the run

            scenarios: dict[str, Callable[[], Awaitable[Any]]] = {
                "Mashpipe endpoint, cache off (a recorded run)": lambda: asgi_call(app, "GET", app_path()),
                "Mashpipe endpoint, cache on (a hit)": lambda: asgi_call(
                    app, "GET", app_path(PIPELINE_CACHED)
                ),
                "Mashpipe webhook delivery (run executed too)": lambda: asgi_call(
                    app,
                    "POST",
                    f"/v1/hooks/{hook_id}",
                    b'{"kind": "bench", "number": 1}',
                    ((b"content-type", b"application/json"),),
                ),
            }
            results = []
            for name, call in scenarios.items():
                for _ in range(10):  # warm caches (plans, statements, connections)
                    await call()
                await settle()
                counters["sql"].clear()
                commits[0] = 0
                counted = await count(name, call, requests, settle)
                counted.sql = collections.Counter(counters["sql"])
                counted.commits = commits[0]
                results.append(counted)
            event.remove(engine, "before_cursor_execute", on_sql)
            event.remove(engine, "commit", on_commit)
    return results


async def _hook(app: Any, auth: Any, yaml_type: Any) -> str:
    """Save a webhook pipeline (no dedupe header, so every delivery starts a run); its hook id."""
    source = b"""\
version: 1
name: bench-calls-hook
triggers:
  - webhook: {}
steps:
  - id: event
    uses: core.set
    with: {value: {number: "${{ trigger.body.number }}", kind: "${{ trigger.body.kind }}"}}
outputs: {event: "${{ steps.event.output }}"}
"""
    _, answer = await asgi_call(app, "PUT", "/v1/pipelines/bench-calls-hook", source, (auth, yaml_type))
    hook_id: str = json.loads(answer)["hooks"][0]["id"]
    return hook_id


async def baseline_scenario(upstream_url: str, requests: int) -> Counted:
    """The hand-written FastAPI + aiohttp endpoint, the same way."""
    from bench.endpoint_baseline import ROUTES, create_app

    app = create_app(upstream_url)
    async with app.router.lifespan_context(app):

        async def call() -> None:
            await asgi_call(app, "GET", ROUTES["aiohttp"])

        async def settle() -> None:
            await asyncio.sleep(0)

        for _ in range(10):
            await call()
        return await count("hand-written FastAPI + aiohttp", call, requests, settle)


async def measure(upstream_url: str, requests: int = 50) -> list[Counted]:
    """Every scenario, against the upstream list at ``upstream_url``."""
    return [
        *(await mashpipe_scenarios(upstream_url, requests)),
        await baseline_scenario(upstream_url, requests),
    ]


def render(counted: list[Counted], top: int = 8) -> str:
    """The counts as the text block of the report."""
    lines = ["Function calls and SQL per request (cProfile call counts, in-process, sequential):"]
    for scenario in counted:
        lines.append(f"  {scenario.name}: {scenario.total:,.0f} calls per request")
        for area, calls in scenario.calls.most_common(top):
            lines.append(f"    {calls / scenario.requests:9,.0f}  {area}")
        if scenario.sql:
            kinds = ", ".join(f"{n / scenario.requests:.1f} {kind}" for kind, n in scenario.sql.most_common())
            lines.append(f"    SQL per request: {kinds}; {scenario.commits / scenario.requests:.1f} commits")
    return "\n".join(lines)
