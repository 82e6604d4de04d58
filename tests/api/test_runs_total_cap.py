"""`GET /v1/runs` with `MASHPIPE_RUNS_TOTAL_MAX`: `total` exact up to the cap, capped with
`total_exact: false` beyond it; the setting and the field in the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from app.main import create_app
from app.settings import Settings

from .helpers import HELLO, client_for, save

HELLO_RUNS = 8
OTHER_RUNS = 3


@pytest.fixture
async def capped(make_settings, app_runner, api_key) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose runs totals are capped at 5, with 8 runs of `hello`, 3 of `other`."""
    async with app_runner(make_settings(runs_total_max=5)) as (app, _), client_for(app, api_key) as client:
        await _seed(client)
        yield client


@pytest.fixture
async def uncapped(make_settings, app_runner, api_key) -> AsyncIterator[httpx.AsyncClient]:
    """The same runs with `runs_total_max=0`: always an exact count."""
    async with app_runner(make_settings(runs_total_max=0)) as (app, _), client_for(app, api_key) as client:
        await _seed(client)
        yield client


async def _seed(client: httpx.AsyncClient) -> None:
    await save(client, HELLO)
    await save(client, HELLO.replace("name: hello", "name: other"))
    for pipeline, count in (("hello", HELLO_RUNS), ("other", OTHER_RUNS)):
        for _ in range(count):
            response = await client.post(f"/v1/pipelines/{pipeline}/runs", json={"wait": True})
            assert response.status_code == 201, response.text


async def _pages(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    pages = [(await client.get("/v1/runs", params=params)).json()]
    while pages[-1]["next_cursor"] is not None:
        cursor = pages[-1]["next_cursor"]
        pages.append((await client.get("/v1/runs", params={**params, "cursor": cursor})).json())
    return pages


def _totals(pages: list[dict[str, Any]]) -> set[tuple[int, bool]]:
    return {(page["total"], page["total_exact"]) for page in pages}


async def test_beyond_the_cap_the_total_is_the_cap_and_not_exact(capped):
    pages = await _pages(capped, limit=3)
    assert sum(len(page["items"]) for page in pages) == HELLO_RUNS + OTHER_RUNS
    assert len({item["id"] for page in pages for item in page["items"]}) == HELLO_RUNS + OTHER_RUNS
    assert _totals(pages) == {(5, False)}

    hello = await _pages(capped, pipeline="hello", limit=2)
    assert [item["pipeline"] for page in hello for item in page["items"]] == ["hello"] * HELLO_RUNS
    assert _totals(hello) == {(5, False)}

    succeeded = await _pages(capped, status="succeeded", limit=4)
    assert _totals(succeeded) == {(5, False)}


async def test_up_to_the_cap_the_total_is_exact(capped):
    other = await _pages(capped, pipeline="other", limit=2)
    assert len(other) == 2
    assert _totals(other) == {(OTHER_RUNS, True)}
    assert _totals(await _pages(capped, status="failed", limit=2)) == {(0, True)}
    assert _totals(await _pages(capped, pipeline="nope")) == {(0, True)}


async def test_a_first_page_holding_every_run_is_exact(capped):
    page = (await capped.get("/v1/runs", params={"limit": 50})).json()
    assert (len(page["items"]), page["total"], page["total_exact"]) == (11, 11, True)


async def test_a_cap_of_zero_always_counts_exactly(uncapped):
    assert _totals(await _pages(uncapped, limit=3)) == {(HELLO_RUNS + OTHER_RUNS, True)}
    assert _totals(await _pages(uncapped, pipeline="hello", limit=2)) == {(HELLO_RUNS, True)}


async def test_other_lists_are_always_exact(capped):
    listed = (await capped.get("/v1/pipelines")).json()
    assert (listed["total"], listed["total_exact"]) == (2, True)


def test_the_setting(monkeypatch):
    assert Settings.model_fields["runs_total_max"].default == 10_000
    monkeypatch.setenv("MASHPIPE_RUNS_TOTAL_MAX", "250")
    assert Settings().runs_total_max == 250
    monkeypatch.setenv("MASHPIPE_RUNS_TOTAL_MAX", "0")
    assert Settings().runs_total_max == 0
    monkeypatch.setenv("MASHPIPE_RUNS_TOTAL_MAX", "-1")
    with pytest.raises(ValidationError, match="runs_total_max"):
        Settings()


def test_the_field_is_in_the_openapi_document(make_settings):
    document = create_app(make_settings()).openapi()
    page = document["components"]["schemas"]["Page_RunSummary_"]
    field = page["properties"]["total_exact"]
    assert field["type"] == "boolean"
    assert field["default"] is True
    assert "MASHPIPE_RUNS_TOTAL_MAX" in field["description"]
