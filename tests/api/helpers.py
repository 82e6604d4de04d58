"""Helpers of the API tests (the fixtures using them are in ``conftest.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

HELLO = """\
# a comment kept verbatim
version: 1
name: hello
description: Greets someone
inputs:
  name: {type: string, default: world}
  times: {type: integer, default: 1, minimum: 1}
steps:
  - id: greeting
    uses: core.template
    with: {text: "Hello, ${{ inputs.name }}!"}
outputs:
  greeting: ${{ steps.greeting.output }}
  times: ${{ inputs.times }}
"""


def client_for(app: Any, key: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, **kwargs), base_url="http://mashpipe.test", headers=headers
    )


async def save(client: httpx.AsyncClient, source: str, *, expect: int = 201) -> Any:
    response = await client.post(
        "/v1/pipelines", content=source, headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == expect, response.text
    return response.json()


async def wait_finished(client: httpx.AsyncClient, run_id: str, *, attempts: int = 500) -> Any:
    """Poll ``GET /v1/runs/{id}`` until the run is finished."""
    for _ in range(attempts):
        response = await client.get(f"/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        run = response.json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return run
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} did not finish: {run}")


def error_of(response: httpx.Response) -> Any:
    """The error object of an error answer, checking the one shape on the way."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return body["error"]
