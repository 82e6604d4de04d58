"""Bad input from connectors (issue 3): a connector that raises, hangs, times out, answers garbage or an
enormous body gives a failed step with a precise message; the other steps and the worker go on.

Everything runs through the real ``ConnectorCaller`` (registry, client stack with the size cap,
invocation) and the real engine; the last test goes through the run service and its queue too.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import BaseModel, Field

from app.engine.types import RunStatus, StepStatus
from app.registry import Registry
from app.runtime.caller import ConnectorCaller
from app.runtime.pipelines import check_source, create_pipeline
from app.runtime.queue import InProcessQueue
from app.runtime.service import RunService
from app.sdk import Connector, Context
from app.sdk.http import build_http_client
from app.sdk.testing import settings_for_tests
from app.storage.db import Database
from app.storage.repositories import AccountRepo
from tests.engine.fakes import load, run

API = "https://unruly.test"
LIMIT = 65_536

unruly = Connector(
    key="unruly",
    version="1.0.0",
    title="Unruly",
    description="A connector that misbehaves in every way it can.",
    base_url=API,
)


class Nothing(BaseModel):
    pass


class Item(BaseModel):
    id: int = Field(description="Item id")
    name: str = Field(description="Item name")


@unruly.action(title="Raise")
async def raises(ctx: Context, p: Nothing) -> dict[str, Any]:
    """Log a line, then raise a plain Python exception."""
    ctx.log.info("about to fail at %s", ctx.now().year)
    raise RuntimeError("kaboom: the connector has a bug")


@unruly.action(title="Hang")
async def hangs(ctx: Context, p: Nothing) -> dict[str, Any]:
    """Never return."""
    await asyncio.Event().wait()
    return {}


@unruly.action(title="Fetch JSON")
async def fetch(ctx: Context, p: Nothing) -> Any:
    """GET /data and return its JSON."""
    return await ctx.request_json("GET", "/data")


@unruly.action(title="Fetch an item")
async def fetch_item(ctx: Context, p: Nothing) -> Item:
    """GET /item and validate it."""
    return Item.model_validate(await ctx.request_json("GET", "/item"))


@unruly.action(title="Wrong output")
async def wrong_output(ctx: Context, p: Nothing) -> list[Item]:
    """Return something that is not the declared type."""
    return [{"id": "one"}]  # type: ignore[list-item]


@unruly.action(title="Fine")
async def fine(ctx: Context, p: Nothing) -> dict[str, Any]:
    """Work."""
    ctx.log.info("all good")
    return {"fine": True}


PIPELINE = """
version: 1
name: unruly
steps:
  - {id: raises, uses: unruly.raises, on_error: continue}
  - {id: hangs, uses: unruly.hangs, timeout: 200ms, on_error: continue}
  - {id: slow_upstream, uses: unruly.fetch, on_error: continue}
  - {id: fine, uses: unruly.fine}
  - id: after
    uses: core.template
    with: {text: "fine is ${{ steps.fine.output.fine }}"}
outputs:
  after: ${{ steps.after.output }}
  raised: ${{ steps.raises.output }}
"""


@pytest.fixture
async def caller() -> AsyncIterator[ConnectorCaller]:
    settings = settings_for_tests(response_max_bytes=LIMIT)
    async with build_http_client(settings) as client:
        yield ConnectorCaller(Registry.from_connectors([unruly]), client, settings)


@respx.mock
async def test_failures_are_precise_and_the_other_steps_go_on(caller: ConnectorCaller) -> None:
    respx.get(f"{API}/data").mock(side_effect=httpx.ReadTimeout("read timed out"))
    result = await run(load(PIPELINE), caller=caller)
    assert result.status == RunStatus.SUCCEEDED
    assert result.outputs == {"after": "fine is true", "raised": None}
    steps = result.steps
    assert steps["fine"].status == StepStatus.SUCCEEDED
    assert steps["fine"].logs == ["INFO all good"]  # ctx.log lands in the step's log
    assert steps["after"].status == StepStatus.SUCCEEDED

    raised = steps["raises"]
    assert raised.status == StepStatus.FAILED
    assert raised.error is not None
    assert (raised.error.code, raised.error.message) == (
        "connector_error",
        "connector raised RuntimeError: kaboom: the connector has a bug",
    )
    assert raised.error.details == {"operation": "unruly.raises", "exception": "RuntimeError"}
    assert raised.logs[0].startswith("INFO about to fail at 20")

    hung = steps["hangs"]
    assert hung.error is not None
    assert (hung.status, hung.error.code, hung.error.message) == (
        StepStatus.FAILED,
        "timeout",
        "timed out after 0.2s",
    )

    slow = steps["slow_upstream"]
    assert slow.error is not None
    assert (slow.error.code, slow.error.message) == ("timeout", f"GET {API}/data: timed out (ReadTimeout)")


async def one_step(caller: ConnectorCaller, uses: str) -> Any:
    spec = load(
        f"""
        version: 1
        name: one
        steps:
          - {{id: s, uses: {uses}}}
        """
    )
    result = await run(spec, caller=caller)
    assert result.status == RunStatus.FAILED
    step = result.steps["s"]
    assert step.status == StepStatus.FAILED
    assert step.error is not None
    assert result.error is not None
    assert result.error.message.startswith("step `s` failed: ")
    return step.error


@respx.mock
async def test_garbage_bodies(caller: ConnectorCaller) -> None:
    respx.get(f"{API}/data").respond(200, text="<html><body>Maintenance</body></html>")
    error = await one_step(caller, "unruly.fetch")
    assert error.code == "invalid_response"
    assert error.message.startswith(f"GET {API}/data: the response is not valid JSON (")
    assert error.message.endswith("it starts with '<html><body>Maintenance</body></html>'")

    respx.get(f"{API}/item").respond(200, json={"id": "seven", "title": "no name"})
    error = await one_step(caller, "unruly.fetch_item")
    assert error.code == "invalid_response"
    assert error.message == (
        "unruly.fetch_item: the upstream data has an unexpected shape: Item: "
        "id: Input should be a valid integer, unable to parse string as an integer; name: Field required"
    )

    error = await one_step(caller, "unruly.wrong_output")
    assert error.code == "invalid_output"
    assert error.message.startswith(
        "unruly.wrong_output returned an output that does not match its declared type list[Item]: 0.id:"
    )


@respx.mock
async def test_enormous_bodies_are_cut_off(caller: ConnectorCaller) -> None:
    respx.get(f"{API}/data").respond(200, content=b"[" + b"1," * LIMIT + b"1]")
    error = await one_step(caller, "unruly.fetch")
    assert (error.code, error.message) == (
        "invalid_response",
        f"response body exceeds {LIMIT} bytes ({API}/data)",
    )

    produced = 0

    async def endless() -> AsyncIterator[bytes]:  # no Content-Length, never ends
        nonlocal produced
        while True:
            produced += 1
            yield b"x" * 8192

    respx.get(f"{API}/data").mock(return_value=httpx.Response(200, content=endless()))
    error = await one_step(caller, "unruly.fetch")
    assert error.message == f"response body exceeds {LIMIT} bytes ({API}/data)"
    assert produced <= LIMIT // 8192 + 2  # stopped right after the limit

    bomb = gzip.compress(b"0" * (LIMIT * 20))
    respx.get(f"{API}/data").respond(200, content=bomb, headers={"Content-Encoding": "gzip"})
    assert len(bomb) < LIMIT
    error = await one_step(caller, "unruly.fetch")
    assert error.message == f"response body exceeds {LIMIT} bytes ({API}/data)"


# -- the worker goes on ------------------------------------------------------------------------------

FAILING = """
version: 1
name: failing
steps:
  - {id: boom, uses: unruly.raises}
  - {id: big, uses: unruly.fetch}
"""

GOOD = """
version: 1
name: good
steps:
  - {id: fine, uses: unruly.fine}
outputs:
  fine: ${{ steps.fine.output.fine }}
"""


@respx.mock
async def test_the_worker_goes_on_after_failing_runs(tmp_path: Path) -> None:
    respx.get(f"{API}/data").respond(200, content=b"x" * (LIMIT + 1))
    settings = settings_for_tests(
        response_max_bytes=LIMIT, database_url=f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    )
    registry = Registry.from_connectors([unruly])
    db = Database(settings.database_url)
    await db.upgrade()
    try:
        async with db.session() as session:
            account = await AccountRepo(session).create("acme")
            for source in (FAILING, GOOD):
                await create_pipeline(
                    session, account.id, source, check_source(source, registry, max_bytes=10_000)
                )
            await session.commit()
        async with build_http_client(settings) as client:
            service = RunService(db, settings, ConnectorCaller(registry, client, settings))
            queue = InProcessQueue(service.execute, max_concurrent=1)
            service.attach_queue(queue)
            await queue.start()
            try:
                failing = [
                    await service.submit(account_id=account.id, pipeline_name="failing", inputs={})
                    for _ in range(3)
                ]
                good = await service.submit(account_id=account.id, pipeline_name="good", inputs={})
                await queue.join()
            finally:
                await queue.stop()
        for submitted in failing:
            record, steps = await service.read(account.id, submitted.id)
            assert record.status == "failed"
            errors = {s.step_id: s.error for s in steps}
            assert errors["boom"] is not None
            assert (
                errors["boom"]["message"] == "connector raised RuntimeError: kaboom: the connector has a bug"
            )
        record, steps = await service.read(account.id, good.id)
        assert (record.status, record.outputs) == ("succeeded", {"fine": True})
        assert steps[0].logs == ["INFO all good"]
    finally:
        await db.dispose()
