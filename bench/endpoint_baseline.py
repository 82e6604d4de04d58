"""The hand-written endpoint the Mashpipe endpoint is compared with: FastAPI + an HTTP client.

``python -m bench.endpoint_baseline --port P --upstream URL`` serves, with uvicorn configured like
``mashpipe serve`` (same event loop and HTTP parser choice, no access log, no server header):

* ``GET /top/aiohttp?min_score=N``: the reference. One shared ``aiohttp.ClientSession``, the body
  decoded and the answer encoded with orjson (what a careful engineer writes by hand).
* ``GET /top/aiohttp-stdjson``: the same, but returning a dict, so FastAPI encodes it
  (``jsonable_encoder`` + ``json.dumps``): the cost of the default JSON path.
* ``GET /top/httpx``: one shared ``httpx.AsyncClient`` on its default transport.
* ``GET /top/httpx-aiohttp``: one shared ``httpx.AsyncClient`` on ``httpx_aiohttp.AiohttpTransport``.

Each does the work of the benchmark's pipeline (:func:`bench.endpoint_workload.top_items`).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx
import orjson
import uvicorn
from fastapi import FastAPI, Response
from httpx_aiohttp import AiohttpTransport

from bench.endpoint_workload import DEFAULT_MIN_SCORE, top_items

ROUTES = {
    "aiohttp": "/top/aiohttp",
    "aiohttp-stdjson": "/top/aiohttp-stdjson",
    "httpx": "/top/httpx",
    "httpx-aiohttp": "/top/httpx-aiohttp",
}
LIMIT = 100  # connections to the upstream, for every client


def create_app(upstream: str) -> FastAPI:
    """The hand-written endpoints, reading the item list at ``upstream``."""
    clients: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=LIMIT, max_keepalive_connections=LIMIT)
        clients["aiohttp"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=LIMIT))
        clients["httpx"] = httpx.AsyncClient(limits=limits)
        clients["httpx-aiohttp"] = httpx.AsyncClient(transport=AiohttpTransport(limits=limits))
        try:
            yield
        finally:
            await clients["aiohttp"].close()
            await clients["httpx"].aclose()
            await clients["httpx-aiohttp"].aclose()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    async def fetch_aiohttp() -> Any:
        session: aiohttp.ClientSession = clients["aiohttp"]
        async with session.get(upstream) as response:
            response.raise_for_status()
            return orjson.loads(await response.read())

    async def fetch_httpx(name: str) -> Any:
        client: httpx.AsyncClient = clients[name]
        response = await client.get(upstream)
        response.raise_for_status()
        return orjson.loads(response.content)

    def answer(value: Any) -> Response:
        return Response(orjson.dumps(value), media_type="application/json")

    @app.get(ROUTES["aiohttp"])
    async def top_aiohttp(min_score: int = DEFAULT_MIN_SCORE) -> Response:
        return answer(top_items(await fetch_aiohttp(), min_score))

    @app.get(ROUTES["aiohttp-stdjson"])
    async def top_aiohttp_stdjson(min_score: int = DEFAULT_MIN_SCORE) -> dict[str, Any]:
        return top_items(await fetch_aiohttp(), min_score)

    @app.get(ROUTES["httpx"])
    async def top_httpx(min_score: int = DEFAULT_MIN_SCORE) -> Response:
        return answer(top_items(await fetch_httpx("httpx"), min_score))

    @app.get(ROUTES["httpx-aiohttp"])
    async def top_httpx_aiohttp(min_score: int = DEFAULT_MIN_SCORE) -> Response:
        return answer(top_items(await fetch_httpx("httpx-aiohttp"), min_score))

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Hand-written FastAPI endpoints of the endpoint benchmark.")
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--upstream", required=True, help="URL of the upstream item list")
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.upstream),
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
