"""`mashpipe serve` hands uvicorn the server options of the settings (no server is started here)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn

from app.cli import GC_THRESHOLDS, cli


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of each `uvicorn.run` call (which does not run)."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    return calls


def test_forwarded_headers_are_ignored_by_default(runner, cli_env, started, monkeypatch) -> None:
    monkeypatch.delenv("MASHPIPE_FORWARDED_ALLOW_IPS", raising=False)
    result = runner.invoke(cli, ["serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    (options,) = started
    assert options["port"] == 8123
    assert options["proxy_headers"] is False  # uvicorn's default would trust 127.0.0.1
    assert options["access_log"] is False


def test_forwarded_headers_are_read_from_the_named_proxies(runner, cli_env, started, monkeypatch) -> None:
    monkeypatch.setenv("MASHPIPE_FORWARDED_ALLOW_IPS", "10.0.0.5, 10.0.0.6")
    result = runner.invoke(cli, ["serve"])
    assert result.exit_code == 0, result.output
    (options,) = started
    assert options["proxy_headers"] is True
    assert options["forwarded_allow_ips"] == "10.0.0.5, 10.0.0.6"


def test_serve_freezes_what_start_up_made(runner, cli_env, monkeypatch) -> None:
    """Once the app is ready, start-up objects leave the collector's generations (gc.freeze) and the
    first generation is larger."""
    import gc

    frozen: list[int] = []
    thresholds: list[tuple[int, ...]] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(1))
    monkeypatch.setattr(gc, "set_threshold", lambda *values: thresholds.append(values))

    def run(app: Any, **kwargs: Any) -> None:
        async def start() -> None:
            async with app.router.lifespan_context(app):
                pass

        asyncio.run(start())

    monkeypatch.setattr(uvicorn, "run", run)
    result = runner.invoke(cli, ["serve"])
    assert result.exit_code == 0, result.output
    assert frozen == [1]
    assert thresholds == [GC_THRESHOLDS]
    assert GC_THRESHOLDS[0] > gc.get_threshold()[0]
