"""Schedules and polls through the API and the running server (task H2): the pipeline's view shows
each schedule's next fire times and each poll's state; the server's loops poll a local feed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from app.runtime.caller import ConnectorCaller
from app.runtime.poller import Poller

from .helpers import client_for, save

FEED = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>News</title><link>http://127.0.0.1/</link><description>d</description>
{items}
</channel></rss>"""


def feed(*ids: int) -> str:
    items = "".join(
        f"<item><title>Post {i}</title><link>http://127.0.0.1/{i}</link><guid>post-{i}</guid></item>"
        for i in ids
    )
    return FEED.format(items=items)


def watcher(url: str, every: str = "1s") -> str:
    return f"""\
version: 1
name: watcher
triggers:
  - schedule: {{cron: "0 8 * * 1-5", timezone: Europe/Paris}}
  - poll: {{uses: rss.new_entries, with: {{url: "{url}"}}, every: {every}}}
steps:
  - id: titles
    uses: core.map
    with: {{items: "${{{{ trigger.items }}}}", to: "${{{{ item.title }}}}"}}
outputs:
  titles: ${{{{ steps.titles.output }}}}
"""


class Feed:
    """A local RSS feed whose entries (or failure) the test sets."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.status = 200
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.status != 200:
            return web.Response(status=self.status, text="down")
        return web.Response(text=feed(*self.ids), content_type="application/rss+xml")


async def until(check: Any, *, attempts: int = 400) -> Any:
    for _ in range(attempts):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.025)
    raise AssertionError("the condition never held")


async def test_the_view_shows_next_fire_times_and_poll_state(
    make_settings, app_runner, api_key, local_server
):
    source = Feed()
    source.ids = [1]
    base = await local_server({"GET /feed.xml": source.handle})
    settings = make_settings(triggers_enabled=False, connectors="rss")
    async with app_runner(settings) as (app, state), client_for(app, api_key) as api:
        created = await save(api, watcher(f"{base}/feed.xml", every="5m"))
        [schedule] = created["schedules"]
        assert (schedule["position"], schedule["cron"], schedule["timezone"]) == (
            0,
            "0 8 * * 1-5",
            "Europe/Paris",
        )
        times = [datetime.fromisoformat(value) for value in schedule["next_fire_times"]]
        assert len(times) == 3
        assert times == sorted(times)
        assert all(t.hour == 8 and t.minute == 0 and t.weekday() < 5 for t in times)  # local time shown
        assert all(t.utcoffset() in (timedelta(hours=1), timedelta(hours=2)) for t in times)
        assert (schedule["fires"], schedule["skipped_fires"], schedule["last_error"]) == (0, 0, None)
        [poll] = created["polls"]
        assert poll["uses"] == "rss.new_entries"
        assert (poll["position"], poll["every"], poll["baselined"], poll["polls"]) == (1, "5m", False, 0)

        caller = ConnectorCaller(state.registry, state.http, settings)
        poller = Poller(state.db, state.runs, caller, settings)
        await poller.tick()  # the baseline
        source.status = 500
        [failed] = await poller.tick(datetime.now(UTC) + timedelta(minutes=6))
        assert failed.error is not None

        view = (await api.get("/v1/pipelines/watcher")).json()
        [poll] = view["polls"]
        assert (poll["baselined"], poll["polls"], poll["failures"]) == (True, 2, 1)
        assert poll["last_error"]["code"] == "upstream_error"
        assert "500" in poll["last_error"]["message"]
        assert poll["last_error"]["retry_at"] is not None
        assert poll["seen_keys"] == 1

        # a new revision keeping both triggers keeps their state
        revised = watcher(f"{base}/feed.xml", every="10m").replace(
            "name: watcher", "name: watcher\ndescription: v2"
        )
        response = await api.put(
            "/v1/pipelines/watcher", content=revised, headers={"Content-Type": "application/yaml"}
        )
        assert response.status_code == 200, response.text
        [poll] = response.json()["polls"]
        assert (poll["every"], poll["baselined"], poll["polls"], poll["failures"]) == ("10m", True, 2, 1)

        # a pipeline without triggers shows empty lists
        other = await save(
            api, "version: 1\nname: plain\nsteps:\n  - {id: a, uses: core.set, with: {value: 1}}\n"
        )
        assert (other["schedules"], other["polls"]) == ([], [])


async def test_the_server_polls_and_starts_one_run_per_batch(
    make_settings, app_runner, api_key, local_server
):
    source = Feed()
    source.ids = [2, 1]
    base = await local_server({"GET /feed.xml": source.handle})
    settings = make_settings(connectors="rss", poll_min_interval_seconds=0, trigger_idle_seconds=0.2)
    async with app_runner(settings) as (app, state), client_for(app, api_key) as api:
        assert state.scheduler is not None
        assert state.poller is not None
        await save(api, watcher(f"{base}/feed.xml", every="200ms"))

        async def baselined() -> bool:
            view = (await api.get("/v1/pipelines/watcher")).json()
            return bool(view["polls"][0]["baselined"])

        await until(baselined)
        source.ids = [4, 3, 2, 1]

        async def one_run() -> Any:
            runs = (await api.get("/v1/runs", params={"pipeline": "watcher"})).json()["items"]
            return runs if runs and runs[0]["status"] == "succeeded" else None

        [summary] = await until(one_run)
        run = (await api.get(f"/v1/runs/{summary['id']}")).json()
        assert run["trigger"]["kind"] == "poll"
        assert [item["title"] for item in run["trigger"]["items"]] == ["Post 4", "Post 3"]
        assert run["outputs"] == {"titles": ["Post 4", "Post 3"]}

        polled = source.requests
        await until(lambda: _more(source, polled + 3))  # it goes on polling: nothing new, no new run
        runs = (await api.get("/v1/runs", params={"pipeline": "watcher"})).json()["items"]
        assert len(runs) == 1


async def _more(source: Feed, count: int) -> bool:
    return source.requests >= count
