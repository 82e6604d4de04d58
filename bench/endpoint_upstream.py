"""The endpoint benchmark's upstream: ``GET /items`` answers the 50-item JSON list, at once.

It runs in its own process on 127.0.0.1 (``python -m bench.endpoint_upstream --port P``) so that
its event loop does not share the GIL of a server under measurement. The body is encoded once at
start: the upstream costs every server under test the same, and as little as possible.
``GET /count`` tells how many lists were served (the cache checks use it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json

from aiohttp import web

from bench.endpoint_workload import UPSTREAM_PATH, make_upstream_items

READY_PREFIX = "READY "


def build_app() -> web.Application:
    """The upstream application: ``GET /items``, ``GET /count``, ``GET /health``."""
    body = json.dumps(make_upstream_items(), separators=(",", ":")).encode()
    served = [0]

    async def items(request: web.Request) -> web.Response:
        served[0] += 1
        return web.Response(body=body, content_type="application/json")

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"served": served[0]})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get(UPSTREAM_PATH, items)
    app.router.add_get("/count", count)
    app.router.add_get("/health", health)
    return app


async def serve(port: int) -> None:
    """Serve on 127.0.0.1:``port`` until cancelled; print ``READY <port>`` once listening."""
    runner = web.AppRunner(build_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024, reuse_address=True)
    await site.start()
    print(f"{READY_PREFIX}{port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The endpoint benchmark's upstream (50 JSON items).")
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
