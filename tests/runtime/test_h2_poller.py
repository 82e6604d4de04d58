"""Polling triggers: baseline, new items, dedupe, cursor kept across restarts and revisions, errors,
leases between processes. A fake connector (``feed``) polls an HTTP API mocked with respx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from pydantic import BaseModel, Field

from app.registry import Registry
from app.runtime.caller import ConnectorCaller
from app.runtime.clock import FakeClock
from app.runtime.poller import Poller
from app.runtime.queue import InProcessQueue
from app.runtime.service import RunService
from app.sdk import Connector, Context, Poll
from app.sdk.http import build_http_client
from app.storage.db import Database
from app.storage.repositories.triggers import StaleTrigger, TriggerRepo

from .h2_support import poll_state, queued_runs, runs_of, save, settings, triggers_of, utc

API = "https://feed.test"
feed = Connector(key="feed", version="1.0.0", title="Feed", description="Numbered posts.", base_url=API)


class Post(BaseModel):
    id: int
    title: str


class Params(BaseModel):
    tag: str = Field(default="all", description="Tag to follow")


class Cursor(BaseModel):
    since: int = Field(default=0, description="Highest id seen")


@feed.poll(title="New posts", dedupe=lambda post: post.id)
async def new_posts(ctx: Context, p: Params, cursor: Cursor | None) -> Poll[Post]:
    """Posts listed by the API (old ones may come again); the cursor is the highest id seen."""
    since = cursor.since if cursor is not None else 0
    raw = await ctx.request_json("GET", "/posts", params={"tag": p.tag, "since": since})
    posts = [Post.model_validate(item) for item in raw]
    return Poll(items=posts, cursor=Cursor(since=max([since, *(post.id for post in posts)])))


REGISTRY = Registry.from_connectors([feed])

WATCH = """
version: 1
name: watch
triggers:
  - poll: {uses: feed.new_posts, with: {tag: python}, every: 1m}
steps:
  - id: titles
    uses: core.map
    with: {items: "${{ trigger.items }}", to: "${{ item.title }}"}
outputs:
  titles: ${{ steps.titles.output }}
  count: ${{ size(trigger.items) }}
"""


def posts(*ids: int) -> list[dict[str, Any]]:
    return [{"id": i, "title": f"post {i}"} for i in ids]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with build_http_client(settings()) as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(utc(2026, 6, 1, 12))


def poller_for(
    db: Database, http: httpx.AsyncClient, clock: FakeClock, runs: RunService | None = None, **overrides
):
    config = settings(**{"trigger_idle_seconds": 86_400, **overrides})
    caller = ConnectorCaller(REGISTRY, http, config)
    return Poller(db, runs or queued_runs(db, config), caller, config, clock=clock)


@respx.mock
async def test_baseline_then_new_items_then_duplicates_dropped(db, account_id, http, clock):
    route = respx.get(f"{API}/posts").respond(json=posts(2, 1))
    pipeline = await save(db, account_id, WATCH, clock.now(), REGISTRY)
    [trigger] = await triggers_of(db, pipeline.id)
    poller = poller_for(db, http, clock)

    [first] = await poller.tick()
    assert first.baseline is True
    assert await runs_of(db, account_id, "watch") == []  # the baseline starts nothing
    state = await poll_state(db, trigger.id)
    assert (state.cursor, state.seen, state.baselined) == ({"since": 2}, ["2", "1"], True)
    assert state.next_poll_at == utc(2026, 6, 1, 12, 1)
    assert route.calls[0].request.url.params["since"] == "0"

    assert await poller.tick() == []  # not due yet: nothing polled
    assert route.call_count == 1

    clock.advance(timedelta(minutes=1))
    route.respond(json=posts(4, 3, 2, 3))  # two new, one seen before, one repeated in the batch
    [second] = await poller.tick()
    assert route.calls[1].request.url.params["since"] == "2"  # from the stored cursor
    assert [item["id"] for item in second.items] == [4, 3]
    assert second.duplicates == 2
    [run] = await runs_of(db, account_id, "watch")
    assert second.run_id == run.id
    assert run.trigger["kind"] == "poll"
    assert run.trigger["items"] == posts(4, 3)  # one run for the batch
    assert run.trigger["uses"] == "feed.new_posts"
    state = await poll_state(db, trigger.id)
    assert state.cursor == {"since": 4}
    assert state.seen == ["2", "1", "4", "3"]
    assert (state.runs_started, state.last_run_id, state.polls) == (1, run.id, 2)

    clock.advance(timedelta(minutes=1))
    [third] = await poller.tick()  # the same answer again: nothing fires twice
    assert (third.items, third.run_id, third.duplicates) == ([], None, 4)
    assert len(await runs_of(db, account_id, "watch")) == 1


@respx.mock
async def test_the_run_sees_trigger_items(db, account_id, http, clock):
    respx.get(f"{API}/posts").mock(
        side_effect=[httpx.Response(200, json=posts(1)), httpx.Response(200, json=posts(3, 2, 1))]
    )
    await save(db, account_id, WATCH, clock.now(), REGISTRY)
    config = settings()
    runs = RunService(db, config, ConnectorCaller(REGISTRY, http, config))
    queue = InProcessQueue(runs.execute, max_concurrent=2)
    runs.attach_queue(queue)
    await queue.start()
    try:
        poller = poller_for(db, http, clock, runs)
        await poller.tick()
        clock.advance(timedelta(minutes=5))
        [outcome] = await poller.tick()
        assert outcome.run_id is not None
        assert await runs.wait(outcome.run_id, 10)
    finally:
        await queue.stop()
    [run] = await runs_of(db, account_id, "watch")
    assert run.status == "succeeded"
    assert run.outputs == {"titles": ["post 3", "post 2"], "count": 2}


@respx.mock
async def test_the_cursor_survives_a_restart_and_a_new_revision(db, account_id, http, clock):
    route = respx.get(f"{API}/posts").respond(json=posts(5))
    pipeline = await save(db, account_id, WATCH, clock.now(), REGISTRY)
    await poller_for(db, http, clock).tick()  # baseline: cursor 5

    # a new revision keeping the trigger (other steps, another interval, another position)
    revised = (
        WATCH.replace("every: 1m", "every: 2m")
        .replace("triggers:\n", 'triggers:\n  - schedule: {cron: "0 0 1 1 *"}\n')
        .replace("name: watch", "name: watch\ndescription: revised")
    )
    await save(db, account_id, revised, clock.now(), REGISTRY)
    polls = [row for row in await triggers_of(db, pipeline.id) if row.kind == "poll"]
    assert len(polls) == 1
    assert (polls[0].position, polls[0].revision, polls[0].params["every"]) == (1, 2, "2m")

    # a restart: another database handle, another poller (another process)
    restarted = Database(str(db.url))
    try:
        clock.advance(timedelta(minutes=1))
        route.respond(json=posts(6, 5))
        [outcome] = await poller_for(restarted, http, clock).tick()
    finally:
        await restarted.dispose()
    assert outcome.baseline is False  # no new baseline: the state was kept
    assert [item["id"] for item in outcome.items] == [6]
    assert route.calls[-1].request.url.params["since"] == "5"
    [run] = await runs_of(db, account_id, "watch")
    assert run.revision == 2
    state = await poll_state(db, polls[0].id)
    assert state.next_poll_at == clock.now() + timedelta(minutes=2)  # the new interval


@respx.mock
async def test_watching_something_else_is_a_new_trigger_with_its_own_baseline(db, account_id, http, clock):
    respx.get(f"{API}/posts").respond(json=posts(1))
    pipeline = await save(db, account_id, WATCH, clock.now(), REGISTRY)
    poller = poller_for(db, http, clock)
    await poller.tick()

    await save(db, account_id, WATCH.replace("tag: python", "tag: rust"), clock.now(), REGISTRY)
    [outcome] = await poller.tick()  # the new trigger is due at once
    assert outcome.baseline is True
    assert await runs_of(db, account_id, "watch") == []
    rows = await triggers_of(db, pipeline.id)
    assert [(row.active, row.params["with"]["tag"]) for row in rows] == [(False, "python"), (True, "rust")]


@respx.mock
async def test_errors_are_recorded_with_backoff_and_change_no_state(db, account_id, http, clock):
    route = respx.get(f"{API}/posts").respond(json=posts(1))
    pipeline = await save(db, account_id, WATCH, clock.now(), REGISTRY)
    [trigger] = await triggers_of(db, pipeline.id)
    poller = poller_for(db, http, clock)
    await poller.tick()

    route.respond(status_code=503, json={"error": "down"})
    expected_waits = [60, 120, 240]
    for failures, wait in enumerate(expected_waits, start=1):
        clock.set((await poll_state(db, trigger.id)).next_poll_at)
        [outcome] = await poller.tick()
        assert outcome.error is not None
        state = await poll_state(db, trigger.id)
        assert state.failures == failures
        assert state.next_poll_at == clock.now() + timedelta(seconds=wait)
        assert (state.cursor, state.seen) == ({"since": 1}, ["1"])  # unchanged
    assert state.last_error is not None
    assert state.last_error["code"] == "upstream_error"
    assert "503" in state.last_error["message"]

    route.respond(json=posts(2, 1))
    clock.set(state.next_poll_at)
    [outcome] = await poller.tick()
    assert [item["id"] for item in outcome.items] == [2]
    state = await poll_state(db, trigger.id)
    assert (state.failures, state.last_error, state.cursor) == (0, None, {"since": 2})


@respx.mock
async def test_the_backoff_is_capped(db, account_id, http, clock):
    respx.get(f"{API}/posts").respond(status_code=500)
    pipeline = await save(db, account_id, WATCH, clock.now(), REGISTRY)
    [trigger] = await triggers_of(db, pipeline.id)
    poller = poller_for(db, http, clock, poll_max_backoff_seconds=300)
    for _ in range(6):
        clock.set((await poll_state(db, trigger.id)).next_poll_at)
        await poller.tick()
    state = await poll_state(db, trigger.id)
    assert state.failures == 6
    assert state.next_poll_at == clock.now() + timedelta(seconds=300)
    assert state.baselined is False  # the baseline is still to be done


async def test_a_poll_that_hangs_times_out(db, account_id, http, clock):
    slow = Connector(key="slow", version="1.0.0", title="Slow", description="Never answers.")

    @slow.poll(title="Hang", dedupe=lambda item: item)
    async def hang(ctx: Context, p: Params, cursor: int | None) -> Poll[int]:
        """Waits forever."""
        await asyncio.Event().wait()
        return Poll(items=[], cursor=None)

    registry = Registry.from_connectors([slow])
    source = WATCH.replace("feed.new_posts, with: {tag: python}", "slow.hang")
    pipeline = await save(db, account_id, source, clock.now(), registry)
    [trigger] = await triggers_of(db, pipeline.id)
    config = settings(poll_timeout_seconds=0.05, trigger_idle_seconds=86_400)
    poller = Poller(db, queued_runs(db, config), ConnectorCaller(registry, http, config), config, clock=clock)

    [outcome] = await poller.tick()

    assert outcome.error is not None
    assert outcome.error["code"] == "timeout"
    state = await poll_state(db, trigger.id)
    assert (state.failures, state.lease_token) == (1, None)


@respx.mock
async def test_a_run_that_cannot_be_created_leaves_the_cursor_where_it_was(db, account_id, http, clock):
    route = respx.get(f"{API}/posts").respond(json=posts(1))
    source = WATCH.replace("triggers:", "inputs:\n  who: {type: string, required: true}\ntriggers:")
    pipeline = await save(db, account_id, source, clock.now(), REGISTRY)
    [trigger] = await triggers_of(db, pipeline.id)
    poller = poller_for(db, http, clock)
    await poller.tick()

    clock.advance(timedelta(minutes=1))
    route.respond(json=posts(2, 1))
    [outcome] = await poller.tick()

    assert outcome.error is not None
    assert "could not start a run" in outcome.error["message"]
    assert await runs_of(db, account_id, "watch") == []
    state = await poll_state(db, trigger.id)
    assert (state.cursor, state.seen, state.failures) == (
        {"since": 1},
        ["1"],
        1,
    )  # same transaction: not moved


@respx.mock
async def test_the_dedupe_window_is_bounded(db, account_id, http, clock):
    route = respx.get(f"{API}/posts").respond(json=posts(1, 2))
    pipeline = await save(db, account_id, WATCH, clock.now(), REGISTRY)
    [trigger] = await triggers_of(db, pipeline.id)
    poller = poller_for(db, http, clock, poll_dedupe_window=3)
    await poller.tick()
    clock.advance(timedelta(minutes=1))
    route.respond(json=posts(3, 4, 5))
    await poller.tick()
    assert (await poll_state(db, trigger.id)).seen == ["3", "4", "5"]


@respx.mock
async def test_two_pollers_do_not_poll_the_same_trigger_twice(db, account_id, http, clock):
    route = respx.get(f"{API}/posts").respond(json=posts(1))
    await save(db, account_id, WATCH, clock.now(), REGISTRY)
    other_db = Database(str(db.url))
    try:
        first, second = poller_for(db, http, clock), poller_for(other_db, http, clock)
        for round_ in range(5):
            route.respond(json=posts(*range(1, round_ + 2)))
            outcomes = await asyncio.gather(first.tick(), second.tick())
            assert sum(len(found) for found in outcomes) == 1
            clock.advance(timedelta(minutes=1))
    finally:
        await other_db.dispose()
    assert route.call_count == 5
    runs = await runs_of(db, account_id, "watch")
    assert [[item["id"] for item in run.trigger["items"]] for run in runs] == [[2], [3], [4], [5]]


async def test_a_lost_lease_stores_nothing(db, account_id, clock):
    pipeline = await save(db, account_id, WATCH, clock.now(), REGISTRY)
    [trigger] = await triggers_of(db, pipeline.id)
    now = clock.now()
    async with db.session() as session:
        repo = TriggerRepo(session)
        assert await repo.claim_poll(trigger.id, "a" * 32, now, now + timedelta(seconds=90)) is not None
        assert await repo.claim_poll(trigger.id, "b" * 32, now, now + timedelta(seconds=90)) is None  # held
        later = now + timedelta(seconds=91)
        claimed = await repo.claim_poll(trigger.id, "b" * 32, later, later + timedelta(seconds=90))  # expired
        assert claimed is not None
        assert claimed[1].lease_token == "b" * 32
        with pytest.raises(StaleTrigger):
            await repo.finish_poll(trigger.id, "a" * 32, cursor=1, seen=["x"], next_poll_at=later, now=later)
        assert not await repo.fail_poll(trigger.id, "a" * 32, error={}, next_poll_at=later, now=later)
        await repo.finish_poll(trigger.id, "b" * 32, cursor=2, seen=["y"], next_poll_at=later, now=later)
        await session.commit()
    state = await poll_state(db, trigger.id)
    assert (state.cursor, state.seen, state.lease_token) == (2, ["y"], None)


@respx.mock
async def test_the_loop_sleeps_until_the_next_poll(db, account_id, http, clock):
    route = respx.get(f"{API}/posts").respond(json=posts(1))
    await save(db, account_id, WATCH, clock.now(), REGISTRY)
    await poller_for(db, http, clock).run(until=clock.now() + timedelta(minutes=10))
    assert route.call_count == 11  # at 0, 1, ..., 10 minutes


async def test_polls_shorter_than_the_minimum_interval_are_spaced_out(db, account_id, http, clock):
    fast = WATCH.replace("every: 1m", "every: 1s")
    pipeline = await save(db, account_id, fast, clock.now(), REGISTRY)
    [trigger] = await triggers_of(db, pipeline.id)
    with respx.mock:
        respx.get(f"{API}/posts").respond(json=[])
        await poller_for(db, http, clock, poll_min_interval_seconds=10).tick()
    assert (await poll_state(db, trigger.id)).next_poll_at == clock.now() + timedelta(seconds=10)


@respx.mock
async def test_a_poller_working_from_an_old_listing_polls_from_the_current_cursor(
    db, account_id, http, clock
):
    route = respx.get(f"{API}/posts").respond(json=posts(1))
    await save(db, account_id, WATCH, clock.now(), REGISTRY)
    slow, fast = poller_for(db, http, clock), poller_for(db, http, clock)
    async with db.session() as session:
        [(row, stale, name)] = await TriggerRepo(session).due_polls(clock.now())  # listed, then stalled
    await fast.tick()  # baseline by the other poller: cursor 1
    clock.advance(timedelta(minutes=5))
    route.respond(json=posts(2, 1))

    outcome = await slow.poll_trigger(row, stale, name, clock.now())

    assert outcome is not None
    assert outcome.baseline is False  # the listing said "no baseline yet"; the claim read the truth
    assert [item["id"] for item in outcome.items] == [2]
    assert route.calls[-1].request.url.params["since"] == "1"
