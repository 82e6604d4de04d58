"""Benchmark 2, for_each: 200 calls of ``http.get_json`` at concurrency 20 to a local server.

The upstream (``bench.upstream``, its own process on 127.0.0.1) answers each call after 20 ms, so a
perfect client needs ``200 / 20 x 20 ms = 200 ms``. The engine goes through the real stack: the
``http`` connector, ``ConnectorCaller``, the outbound client with its egress guard (127.0.0.1 is
allowlisted), with the default settings (``http_transport=aiohttp``) and with ``http_transport=httpx``
(for comparison). Baselines: the same calls by hand with asyncio + httpx (and aiohttp) and a semaphore
of 20. Target: wall time within 1.3x of the ideal, with the default settings.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import httpx

from bench.engine_host import compile_plan, run_plan
from bench.harness import (
    BenchConfig,
    BenchResult,
    Line,
    MissingDependency,
    Target,
    measure,
    median,
    profile_async,
    require,
)
from bench.upstream import upstream_server
from bench.workload import FOR_EACH_YAML, load_spec

KEY = "for_each"
TITLE = "for_each: http.get_json calls to a local upstream (20 ms each) at concurrency 20"
TARGET_VS_IDEAL = 1.3


def build_caller(settings: Any) -> tuple[Any, Any]:
    """The real connector stack as the server builds it from ``settings``: registry with the
    ``http`` connector, outbound client (``build_http_client``), ``ConnectorCaller``."""
    registry_mod = require("app.registry", "Registry")
    http_mod = require("app.sdk.http", "build_http_client")
    caller_mod = require("app.runtime.caller", "ConnectorCaller")
    connector = require("connectors.http", "connector").connector
    registry = registry_mod.Registry.from_connectors([connector])
    client = http_mod.build_http_client(settings)
    return caller_mod.ConnectorCaller(registry, client, settings), client


def _settings(**values: Any) -> Any:
    from app.settings import Settings

    missing = set(values) - set(Settings.model_fields)
    if missing:
        raise MissingDependency(f"Settings has no {', '.join(sorted(missing))}")
    return Settings(**values)


async def run(config: BenchConfig) -> BenchResult:
    calls = 40 if config.quick else 200
    concurrency, delay_ms = 20, 20.0
    ideal_s = calls / concurrency * delay_ms / 1000
    params = {"calls": calls, "concurrency": concurrency, "delay_ms": delay_ms, "repeats": config.repeats}
    result = BenchResult(KEY, TITLE, params=params)

    settings = _settings(egress_allow="127.0.0.1/32")
    default_transport = settings.http_transport
    other_transport = "httpx" if default_transport == "aiohttp" else "aiohttp"
    other_settings = _settings(egress_allow="127.0.0.1/32", http_transport=other_transport)
    ids = list(range(calls))
    plan = compile_plan(load_spec(FOR_EACH_YAML % {"concurrency": concurrency}))

    with upstream_server(delay_ms=delay_ms) as base_url:
        caller, client = build_caller(settings)
        other_caller, other_client = build_caller(other_settings)
        inputs = {"ids": ids, "base_url": base_url, "concurrency": concurrency}
        urls = [f"{base_url}/items/{i}" for i in ids]
        try:
            async with (
                httpx.AsyncClient(timeout=30) as hx,
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session,
            ):
                expected = await _httpx_baseline(hx, urls, concurrency)
                for some_caller in (caller, other_caller):
                    got = (await run_plan(plan, inputs, some_caller)).outputs
                    if got != {"items": expected}:
                        raise AssertionError("engine for_each results differ from the baseline's")

                async def engine() -> None:
                    await run_plan(plan, inputs, caller)

                async def engine_other() -> None:
                    await run_plan(plan, inputs, other_caller)

                async def baseline_httpx() -> None:
                    await _httpx_baseline(hx, urls, concurrency)

                async def baseline_aiohttp() -> None:
                    await _aiohttp_baseline(session, urls, concurrency)

                variants = {"engine": engine, f"engine/{other_transport}": engine_other}
                baselines = {"httpx": baseline_httpx, "aiohttp": baseline_aiohttp}
                cpu: dict[str, list[float]] = {}
                samples = await measure({**variants, **baselines}, config.repeats, cpu=cpu)
                if config.profile:
                    result.notes.append(await profile_async(engine))
        finally:
            await client.aclose()
            await other_client.aclose()

    result.samples = {**samples, **{f"{name}.cpu": values for name, values in cpu.items()}}
    other = f"engine/{other_transport}"
    engine_s, engine_other_s, httpx_s, aiohttp_s = (
        median(samples[k]) for k in ("engine", other, "httpx", "aiohttp")
    )
    result.lines = [
        Line("ideal (calls / concurrency x delay)", ideal_s, "s"),
        Line(f"engine: for_each + http.get_json (default settings: {default_transport})", engine_s, "s"),
        Line(f"engine with MASHPIPE_HTTP_TRANSPORT={other_transport}", engine_other_s, "s"),
        Line("hand-written asyncio + httpx", httpx_s, "s"),
        Line("hand-written asyncio + aiohttp", aiohttp_s, "s"),
        Line("ratio engine / ideal", engine_s / ideal_s, "x"),
        Line("ratio engine / httpx baseline", engine_s / httpx_s, "x"),
        Line("ratio engine / aiohttp baseline", engine_s / aiohttp_s, "x"),
        Line(f"ratio engine (http_transport={other_transport}) / ideal", engine_other_s / ideal_s, "x"),
        Line(
            f"ratio engine (http_transport={other_transport}) / {other_transport} baseline",
            engine_other_s / (httpx_s if other_transport == "httpx" else aiohttp_s),
            "x",
        ),
        Line("ratio httpx baseline / ideal", httpx_s / ideal_s, "x"),
        Line("ratio aiohttp baseline / ideal", aiohttp_s / ideal_s, "x"),
        Line(f"CPU per call: engine (default, {default_transport})", median(cpu["engine"]) / calls, "s"),
        Line(f"CPU per call: engine ({other_transport} transport)", median(cpu[other]) / calls, "s"),
        Line("CPU per call: hand-written httpx", median(cpu["httpx"]) / calls, "s"),
        Line("CPU per call: hand-written aiohttp", median(cpu["aiohttp"]) / calls, "s"),
    ]
    result.targets += [
        Target(
            f"for_each wall / ideal (default transport, {default_transport})",
            engine_s / ideal_s,
            "<=",
            TARGET_VS_IDEAL,
            "x",
        ),
    ]
    return result


async def _httpx_baseline(client: httpx.AsyncClient, urls: list[str], concurrency: int) -> list[Any]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(url: str) -> Any:
        async with semaphore:
            response = await client.get(url)
            response.raise_for_status()
            return response.json()

    return list(await asyncio.gather(*(one(url) for url in urls)))


async def _aiohttp_baseline(session: aiohttp.ClientSession, urls: list[str], concurrency: int) -> list[Any]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(url: str) -> Any:
        async with semaphore, session.get(url) as response:
            response.raise_for_status()
            return await response.json()

    return list(await asyncio.gather(*(one(url) for url in urls)))
