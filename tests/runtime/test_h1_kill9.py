"""A real ``kill -9`` of ``mashpipe serve`` in the middle of two runs, then a restart on the same SQLite
file: the run whose interrupted step may be retried is resumed (the step that had succeeded is not
called again) and succeeds; the other fails with the restart error. Neither stays running."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
KEY = "mp_kill9_test_key_0123456789abcdef"

RESUMABLE = """\
version: 1
name: resumable
steps:
  - id: first
    uses: http.get_json
    with: {{url: "{base}/first"}}
  - id: slow
    uses: http.get_json
    with: {{url: "{base}/slow/resumable/${{{{ steps.first.output.n }}}}"}}
    timeout: 120s
    retry: {{attempts: 2, initial: 10ms}}
outputs:
  total: ${{{{ steps.first.output.n + steps.slow.output.n }}}}
"""

FRAGILE = """\
version: 1
name: fragile
steps:
  - id: slow
    uses: http.get_json
    with: {{url: "{base}/slow/fragile/0"}}
    timeout: 120s
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Upstream:
    """``/first`` answers at once; ``/slow/...`` holds the first call of each pipeline until the test
    ends (the server is killed meanwhile), later calls answer at once."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {"first": 0, "resumable": 0, "fragile": 0}
        self.entered = {"resumable": asyncio.Event(), "fragile": asyncio.Event()}
        self.release = asyncio.Event()

    async def first(self, request: web.Request) -> web.Response:
        self.hits["first"] += 1
        return web.json_response({"n": 1})

    async def slow(self, request: web.Request) -> web.Response:
        which = request.match_info["which"]
        self.hits[which] += 1
        if self.hits[which] == 1:
            self.entered[which].set()
            await self.release.wait()
        return web.json_response({"n": 41})


@contextmanager
def server(tmp_path: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "MASHPIPE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'mashpipe.db'}",
        "MASHPIPE_SECRET_KEY": "kill9-test-secret-0123456789abcdef",
        "MASHPIPE_BOOTSTRAP_KEY": KEY,
        "MASHPIPE_EGRESS_ALLOW": "127.0.0.1/32",
        "MASHPIPE_RUN_HEARTBEAT_SECONDS": "0.5",  # a dead process's runs are stale after 1.5 s
    }
    env.pop("MASHPIPE_EXAMPLES_DIR", None)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@asynccontextmanager
async def client(port: int, process: subprocess.Popen[bytes], log: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    ) as http:
        for _ in range(600):
            assert process.poll() is None, log.read_text(errors="replace")
            try:
                if (await http.get("/v1/health")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        yield http


async def until(
    http: httpx.AsyncClient, run_id: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll the run until ``check(run)``; a bound on the number of polls, not a timing assertion."""
    run: dict[str, Any] = {}
    for _ in range(1200):
        response = await http.get(f"/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        run = response.json()
        if check(run):
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never reached the expected state: {run}")


def step(run: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(item for item in run["steps"] if item["id"] == step_id)


def slow_is_running(run: dict[str, Any]) -> bool:
    return any(item["id"] == "slow" and item["status"] == "running" for item in run["steps"])


def finished(run: dict[str, Any]) -> bool:
    return run["status"] in ("succeeded", "failed", "cancelled")


@pytest.mark.slow
async def test_kill_9_mid_run_then_restart(tmp_path, local_server):
    upstream = Upstream()
    base = await local_server({"GET /first": upstream.first, "GET /slow/{which}/{n}": upstream.slow})
    log = tmp_path / "server.log"
    port = free_port()
    try:
        with server(tmp_path, port, log) as process:
            async with client(port, process, log) as http:
                for source in (RESUMABLE, FRAGILE):
                    saved = await http.post(
                        "/v1/pipelines",
                        content=source.format(base=base),
                        headers={"Content-Type": "application/yaml"},
                    )
                    assert saved.status_code == 201, saved.text
                resumable = (await http.post("/v1/pipelines/resumable/runs", json={})).json()["id"]
                fragile = (await http.post("/v1/pipelines/fragile/runs", json={})).json()["id"]
                await upstream.entered["resumable"].wait()
                await upstream.entered["fragile"].wait()
                # the step is recorded running (durable) before the kill
                await until(http, resumable, slow_is_running)
                await until(http, fragile, slow_is_running)
            os.kill(process.pid, signal.SIGKILL)
            assert process.wait(timeout=30) == -signal.SIGKILL

        port = free_port()
        with server(tmp_path, port, log) as restarted:
            async with client(port, restarted, log) as http:
                resumed = await until(http, resumable, finished)
                failed = await until(http, fragile, finished)
                listed = (await http.get("/v1/runs", params={"status": "running"})).json()
    finally:
        upstream.release.set()

    assert resumed["status"] == "succeeded", resumed
    assert resumed["outputs"] == {"total": 42}
    assert resumed["attempt"] == 1  # the same run went on: resumed, not retried
    assert step(resumed, "first")["logs"][-1] == "reused from an earlier attempt"
    assert step(resumed, "slow")["attempts"] == 2  # the interrupted attempt counts
    assert upstream.hits["first"] == 1  # not called again after the restart
    assert upstream.hits["resumable"] == 2

    assert failed["status"] == "failed", failed
    assert failed["error"]["code"] == "interrupted"
    assert failed["error"]["message"] == (
        "interrupted by a server restart: step `slow` was running and it has no retry policy, "
        "so it is not run again"
    )
    assert step(failed, "slow")["status"] == "failed"
    assert upstream.hits["fragile"] == 1

    assert listed["items"] == []  # nothing is left running
    assert "recovery: " in log.read_text(errors="replace")
