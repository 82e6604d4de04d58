"""Hooks and published endpoints remember their pipeline lookup briefly; saves through the API forget it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from app.runtime.pipelines import check_source, put_pipeline
from app.runtime.webhooks import StorageBusy, submit_retrying_busy

from .helpers import client_for, save

PUBLISHED = """\
version: 1
name: pub
description: DESCRIPTION
triggers:
  - endpoint: {format: json}
  - webhook: {}
steps:
  - id: a
    uses: core.set
    with: {value: "VALUE"}
outputs:
  value: ${{ steps.a.output }}
"""


def source(value: str) -> str:
    return PUBLISHED.replace("VALUE", value).replace("DESCRIPTION", f"says {value}")


async def save_elsewhere(state: Any, text: str) -> None:
    """A new revision written the way another server process would: straight to the database."""
    spec = check_source(text, state.registry, max_bytes=100_000)
    async with state.db.session() as session:
        await put_pipeline(session, state.bootstrap.account_id, "pub", text, spec)
        await session.commit()


async def test_another_process_revision_is_served_once_the_lookup_expires(api, anon, app_state):
    state = app_state[1]
    now = [500.0]
    state.endpoints.clock = lambda: now[0]
    await save(api, source("one"))
    assert (await anon.get("/v1/apps/default/pub")).json() == {"value": "one"}

    await save_elsewhere(state, source("two"))
    assert (await anon.get("/v1/apps/default/pub")).json() == {"value": "one"}  # within the lookup ttl
    now[0] += state.settings.published_lookup_ttl + 0.01
    assert (await anon.get("/v1/apps/default/pub")).json() == {"value": "two"}


async def test_saving_through_the_api_is_visible_at_once(api, anon):
    await save(api, source("one"))
    hook = (await api.get("/v1/pipelines/pub")).json()["hooks"][0]["id"]
    assert (await anon.get("/v1/apps/default/pub")).json() == {"value": "one"}
    assert (await anon.post(f"/v1/hooks/{hook}?wait=true", json={})).json()["outputs"] == {"value": "one"}

    response = await api.put(
        "/v1/pipelines/pub", content=source("two"), headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == 200
    assert (await anon.get("/v1/apps/default/pub")).json() == {"value": "two"}
    assert (await anon.post(f"/v1/hooks/{hook}?wait=true", json={})).json()["outputs"] == {"value": "two"}

    assert (await api.delete("/v1/pipelines/pub")).status_code == 204
    assert (await anon.get("/v1/apps/default/pub")).status_code == 404
    assert (await anon.post(f"/v1/hooks/{hook}", json={})).status_code == 404


class LockedRuns:
    """A run service whose database stays locked for the first ``locked`` submissions."""

    def __init__(self, locked: int) -> None:
        self.locked = locked
        self.calls = 0

    async def submit(self, **kwargs: Any) -> str:
        self.calls += 1
        if self.calls <= self.locked:
            raise OperationalError("INSERT INTO runs ...", {}, Exception("database is locked"))
        return f"run for {kwargs['pipeline_name']}"


async def test_a_locked_database_is_retried_then_503(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("app.runtime.webhooks.BUSY_RETRIES", (0, 0, 0))
    runs = LockedRuns(locked=2)
    assert await submit_retrying_busy(runs, pipeline_name="p") == "run for p"  # type: ignore[arg-type]
    assert runs.calls == 3

    always = LockedRuns(locked=100)
    with pytest.raises(StorageBusy) as caught:
        await submit_retrying_busy(always, pipeline_name="p")  # type: ignore[arg-type]
    assert caught.value.status == 503
    assert always.calls == 4

    class OtherError(LockedRuns):
        async def submit(self, **kwargs: Any) -> str:
            raise OperationalError("SELECT", {}, Exception("no such table: runs"))

    with pytest.raises(OperationalError):
        await submit_retrying_busy(OtherError(0), pipeline_name="p")  # type: ignore[arg-type]


async def test_hook_and_feed_urls_use_the_public_url(make_settings, app_runner, api_key):
    settings = make_settings(public_url="https://mashpipe.example.com/")
    feed = (
        source("one")
        .replace("format: json", "format: rss")
        .replace('with: {value: "one"}', 'with: {value: [{title: "a", url: "https://a.example"}]}')
    )
    async with app_runner(settings) as (app, _), client_for(app, api_key) as api:
        saved = await save(api, feed)
        [hook] = saved["hooks"]
        assert hook["url"] == f"https://mashpipe.example.com/v1/hooks/{hook['id']}"
        response = await api.get("/v1/apps/default/pub?x=1")
        assert response.status_code == 422  # no input x: the link is only made for valid calls
        response = await api.get("/v1/apps/default/pub")
        assert b"<link>https://mashpipe.example.com/v1/apps/default/pub</link>" in response.content
