"""MASHPIPE_TELEMETRY: FastAPI's OpenTelemetry integration is off by default (no lookup per request)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace

from .helpers import client_for


@pytest.fixture
def provider_lookups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the lookups of the global OpenTelemetry tracer provider."""
    seen: list[int] = []
    lookup = trace.get_tracer_provider

    def counting() -> Any:
        seen.append(1)
        return lookup()

    monkeypatch.setattr(trace, "get_tracer_provider", counting)
    return seen


@pytest.mark.parametrize(("enabled", "looked_up"), [(False, False), (True, True)])
async def test_telemetry_setting(make_settings, app_runner, provider_lookups, enabled, looked_up) -> None:
    async with app_runner(make_settings(telemetry=enabled)) as (app, _), client_for(app) as client:
        provider_lookups.clear()
        response = await client.get("/v1/health")
    assert response.status_code == 200
    assert bool(provider_lookups) is looked_up
