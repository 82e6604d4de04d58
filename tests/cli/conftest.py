"""CLI fixtures: a CliRunner, environment settings for a fresh database, a threaded upstream server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MASHPIPE_* variables for a fresh SQLite database; returns the database file."""
    database = tmp_path / "cli" / "mashpipe.db"
    monkeypatch.setenv("MASHPIPE_DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    monkeypatch.setenv("MASHPIPE_SECRET_KEY", "cli-test-secret-0123456789abcdef")
    monkeypatch.setenv("MASHPIPE_EGRESS_ALLOW", "127.0.0.1/32")
    monkeypatch.delenv("MASHPIPE_BOOTSTRAP_KEY", raising=False)
    monkeypatch.delenv("MASHPIPE_CONNECTORS", raising=False)
    return database


@pytest.fixture
def upstream() -> Iterator[Callable[[dict[str, tuple[int, Any]]], str]]:
    """A threaded HTTP server on 127.0.0.1 answering JSON: ``base = upstream({"/path": (200, body)})``."""
    servers: list[ThreadingHTTPServer] = []

    def start(routes: dict[str, tuple[int, Any]]) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = routes.get(self.path.split("?", 1)[0], (404, {"error": "not found"}))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
