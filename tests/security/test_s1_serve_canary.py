"""The canary secret against a real `mashpipe serve` process: its whole log (debug level) never shows it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.cli.test_cli_serve import free_port
from tests.security.test_s1_masking import CANARY, ECHO, FAILS

KEY = "mp_canary_serve_key_0123456789abcdef"


@pytest.fixture
def echo_upstream() -> Iterator[tuple[str, list[str]]]:
    """A threaded upstream on 127.0.0.1: POST /echo echoes the token, GET /fail refuses it, quoting it."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: Any) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Echo", self.headers.get("X-Token", ""))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            token = self.headers.get("X-Token", "")
            seen.append(token)
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            path, _, query = self.path.partition("?")
            self._answer(
                200, {"header": token, "query": dict([query.split("=", 1)]), "body": body, "url": path}
            )

        def do_GET(self) -> None:
            token = self.headers.get("X-Token", "")
            seen.append(token)
            self._answer(400, {"message": f"token {token} is not welcome here"})

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_a_real_server_never_logs_the_canary(tmp_path, echo_upstream):
    upstream, seen = echo_upstream
    port = free_port()
    env = {
        **os.environ,
        "MASHPIPE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve' / 'mashpipe.db'}",
        "MASHPIPE_SECRET_KEY": "canary-serve-secret-0123456789abcdef",
        "MASHPIPE_BOOTSTRAP_KEY": KEY,
        "MASHPIPE_EGRESS_ALLOW": "127.0.0.1/32",
        "MASHPIPE_LOG_LEVEL": "debug",
    }
    env.pop("MASHPIPE_EXAMPLES_DIR", None)
    log_file = tmp_path / "server.log"  # a file, not a pipe: a debug log would fill a pipe and block
    with log_file.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    answers: list[str] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(300):
                if process.poll() is not None:
                    break
                try:
                    if client.get("/v1/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert process.poll() is None, "the server exited early"
            client.headers["Authorization"] = f"Bearer {KEY}"
            assert client.put("/v1/secrets/CANARY", json={"value": CANARY}).status_code == 201
            for source in (ECHO, FAILS):
                saved = client.post(
                    "/v1/pipelines", content=source, headers={"Content-Type": "application/yaml"}
                )
                assert saved.status_code == 201, saved.text
            statuses = []
            for name in ("echo", "fails"):
                run = client.post(
                    f"/v1/pipelines/{name}/runs", json={"inputs": {"base": upstream}, "wait": True}
                )
                answers.append(run.text)
                statuses.append(run.json()["status"])
                answers.append(client.get(f"/v1/runs/{run.json()['id']}").text)
            answers.append(client.get("/v1/runs").text)
            assert statuses == ["succeeded", "failed"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    log = log_file.read_text(encoding="utf-8")
    assert seen == [CANARY, CANARY]  # the secret really went out, twice
    assert "token=***" in log  # httpx's request line was logged, masked
    assert "DEBUG" in log
    assert CANARY not in log
    for answer in answers:
        assert CANARY not in answer
        assert "***" in answer
