"""A local upstream HTTP server for the benchmarks, run in its own process.

Running it in a subprocess keeps its event loop and its share of the GIL away from the code under
measurement. ``GET /items/{id}`` answers ``{"id", "title", "score"}`` after a fixed delay
(``--delay-ms``, default 20 ms, overridable per request with ``?delay_ms=``).

Use it from Python with :func:`upstream_server`::

    with upstream_server(delay_ms=20) as base_url:
        ...  # GET f"{base_url}/items/1"

or by hand: ``python -m bench.upstream --port 8901 --delay-ms 20``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

READY_PREFIX = "READY "
START_TIMEOUT = 20.0


def _build_app(delay_ms: float) -> object:
    from aiohttp import web

    async def item(request: web.Request) -> web.Response:
        raw_delay = request.query.get("delay_ms")
        delay = float(raw_delay) if raw_delay is not None else delay_ms
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        item_id = request.match_info["item_id"]
        number = int(item_id) if item_id.isdigit() else 0
        return web.json_response({"id": item_id, "title": f"Item {item_id}", "score": number % 97})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/items/{item_id}", item)
    app.router.add_get("/health", health)
    return app


async def serve(port: int, delay_ms: float) -> None:
    """Serve on 127.0.0.1 until cancelled; print ``READY <port>`` once listening."""
    from aiohttp import web

    app = _build_app(delay_ms)
    assert isinstance(app, web.Application)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    site = web.SockSite(runner, sock, backlog=1024)
    await site.start()
    print(f"{READY_PREFIX}{sock.getsockname()[1]}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def upstream_server(delay_ms: float = 20.0) -> Iterator[str]:
    """Start the server in a subprocess on a free port of 127.0.0.1; yield its base URL."""
    command = [sys.executable, "-m", "bench.upstream", "--port", "0", "--delay-ms", str(delay_ms)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=_project_root()
    )
    try:
        port = _wait_ready(process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _wait_ready(process: subprocess.Popen[str]) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read() if process.stderr is not None else ""
            raise RuntimeError(f"upstream server exited with {process.returncode}: {err.strip()[-2000:]}")
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            line = process.stdout.readline()
            if line.startswith(READY_PREFIX):
                return int(line[len(READY_PREFIX) :].strip())
    raise RuntimeError(f"upstream server did not start within {START_TIMEOUT:.0f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="delay before each answer")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.delay_ms))


if __name__ == "__main__":
    main()
