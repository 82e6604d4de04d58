"""`mashpipe serve` as a real process: migrates, bootstraps, loads the examples, serves, logs safely."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
KEY = "mp_serve_test_key_0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serve_end_to_end(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "MASHPIPE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve' / 'mashpipe.db'}",
        "MASHPIPE_SECRET_KEY": "serve-test-secret-0123456789abcdef",
        "MASHPIPE_BOOTSTRAP_KEY": KEY,
        "MASHPIPE_EXAMPLES_DIR": str(REPO / "examples"),
        "MASHPIPE_TRIGGERS_ENABLED": "false",  # the examples' polls would call public APIs
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--banner"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(300):
                if process.poll() is not None:
                    break
                try:
                    if client.get("/v1/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert process.poll() is None, "the server exited early"
            auth = {"Authorization": f"Bearer {KEY}"}
            run = client.post(
                "/v1/pipelines/hello/runs", json={"inputs": {"name": "Ada"}, "wait": True}, headers=auth
            )
            assert run.status_code == 201, run.text
            assert run.json()["outputs"]["greeting"] == "Hello, Ada! Top languages today:"
            assert (
                client.get("/v1/pipelines", headers={"Authorization": "Bearer wrong-key-000000"}).status_code
                == 401
            )
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert f"Mashpipe is running at {base}" in output
    assert f"API key of the `default` account: {KEY}" in output
    assert "/v1/pipelines/hello/runs" in output
    access = [line for line in output.splitlines() if "mashpipe.access" in line]
    assert any('"POST /v1/pipelines/hello/runs" 201' in line for line in access), output
    assert any('"GET /v1/pipelines" 401' in line for line in access), output
    for line in access:
        assert KEY not in line
        assert "wrong-key" not in line
        assert "Bearer" not in line
    assert (tmp_path / "serve" / "mashpipe.db").exists()
