"""A real ``mashpipe serve`` for the endpoint and webhook benchmarks.

The server is the console script in its own process (uvicorn, as users run it) on a free port of
127.0.0.1, with a fresh SQLite file in the benchmark's temporary folder, a known bootstrap API key,
the egress allowlist opened for 127.0.0.1 only (the local upstream), warnings-only logs, the
outbound HTTP transport given (``MASHPIPE_HTTP_TRANSPORT``) and the rate limits off (one client
sending thousands of requests a second is the point here). Pipelines are saved through the API
(``PUT /v1/pipelines/{name}``), as a user would.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.endpoint_procs import Service, free_port, mashpipe_command, python_command
from bench.harness import MissingDependency

APPS_ROUTE = "/v1/apps/{account}/{name}"
HOOKS_ROUTE = "/v1/hooks/{hook_id}"


@dataclass(slots=True)
class MashpipeServer:
    """A started server, its API key and its database file."""

    service: Service
    api_key: str
    database: Path

    @property
    def base_url(self) -> str:
        return self.service.base_url

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, Any]:
        """One authenticated API call; returns the status and the decoded JSON answer."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def save_pipeline(self, name: str, source: str) -> dict[str, Any]:
        """Create or update a pipeline (YAML source); returns the API's view of it."""
        status, answer = self.request("PUT", f"/v1/pipelines/{name}", source.encode(), "application/yaml")
        if status not in (200, 201):
            raise RuntimeError(f"saving pipeline {name!r} answered {status}: {answer}")
        assert isinstance(answer, dict)
        return answer

    def active_runs(self) -> int:
        """Runs still queued or running, read from the SQLite file (read-only)."""
        uri = f"file:{self.database}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as connection:
            (count,) = connection.execute(
                "SELECT count(*) FROM runs WHERE status IN ('queued', 'running')"
            ).fetchone()
        return int(count)

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Wait until no run is queued or running: runs started by a load that has ended would
        otherwise take CPU from whatever is measured next."""
        deadline = time.monotonic() + timeout
        while self.active_runs():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.service.name}: runs still active after {timeout:.0f} s")
            time.sleep(0.05)

    def require_routes(self, *routes: str) -> None:
        """:class:`MissingDependency` when the server does not serve every one of ``routes`` yet."""
        status, document = self.request("GET", "/openapi.json")
        paths = document.get("paths", {}) if status == 200 and isinstance(document, dict) else {}
        missing = [route for route in routes if not any(_same_route(route, path) for path in paths)]
        if missing:
            raise MissingDependency(f"mashpipe serve has no {', '.join(missing)} yet")


def _same_route(wanted: str, path: str) -> bool:
    """Equal paths up to the names of their parameters."""
    wanted_parts, parts = wanted.strip("/").split("/"), path.strip("/").split("/")
    if len(wanted_parts) != len(parts):
        return False
    return all(
        a == b or (a.startswith("{") and b.startswith("{")) for a, b in zip(wanted_parts, parts, strict=True)
    )


def start_mashpipe(
    work_dir: Path,
    *,
    name: str = "mashpipe",
    transport: str = "httpx",
    extra_env: dict[str, str] | None = None,
    whatif: tuple[str, ...] = (),
) -> MashpipeServer:
    """Start ``mashpipe serve`` on a fresh SQLite file in ``work_dir``; ``whatif``: options of
    :mod:`bench.endpoint_whatif` (a server with a lever pulled, for measurements)."""
    port = free_port()
    api_key = "mp_bench_" + secrets.token_urlsafe(24)
    database = work_dir / f"{name}.db"
    env = {
        "MASHPIPE_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "MASHPIPE_SECRET_KEY": secrets.token_urlsafe(32),
        "MASHPIPE_BOOTSTRAP_KEY": api_key,
        "MASHPIPE_EGRESS_ALLOW": "127.0.0.1/32",
        "MASHPIPE_HOST": "127.0.0.1",
        "MASHPIPE_PORT": str(port),
        "MASHPIPE_LOG_LEVEL": "warning",
        "MASHPIPE_HTTP_TRANSPORT": transport,
        # Rate limits off: a load test from one client would only measure 429s. (The public limit is a
        # moving window in memory; at benchmark rates its per-request cost would grow with the limit.)
        "MASHPIPE_PUBLIC_RATE_LIMIT": "",
        "MASHPIPE_API_RATE_LIMIT": "",
        **(extra_env or {}),
    }
    command = (
        python_command("bench.endpoint_whatif", *whatif, "serve") if whatif else mashpipe_command("serve")
    )
    service = Service.start(name, command, port=port, ready_path="/v1/health", log_dir=work_dir, env=env)
    return MashpipeServer(service, api_key, database)
