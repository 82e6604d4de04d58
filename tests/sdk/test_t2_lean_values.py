"""Task T2: the pieces of the lean path checked against what they replace.

* ``wire_headers`` against the headers the aiohttp transport writes for ``build_request`` + the auth flow;
* ``returns_request_json`` (read from an operation's source) and the skipped ``-> Any`` round trip:
  the output equals what ``_convert`` gives, and anything else still goes through ``_convert``;
* ``RetryBudget.resume`` against ``RetryBudget.send``.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from app.sdk import Connector, Context
from app.sdk import invoke as invoke_module
from app.sdk.auth import HeaderAuth, QueryParamAuth
from app.sdk.direct_json import wire_headers
from app.sdk.errors import ConnectionFailed
from app.sdk.http import ConnectorHTTP, build_http_client
from app.sdk.invoke import CallOptions, invoke_action
from app.sdk.passthrough import returns_request_json
from app.sdk.retries import RetryPolicy
from app.sdk.testing import settings_for_tests


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with build_http_client(
        settings_for_tests(http_transport="aiohttp", egress_allow="127.0.0.1/32")
    ) as c:
        yield c


def transport_headers(http: ConnectorHTTP, url: str, headers: Any) -> list[tuple[str, str]]:
    """What the aiohttp transport writes for the request the direct path builds (auth flow applied)."""
    request = http.build_request("GET", url, headers=headers)
    if http.auth is not None and http.same_origin(request.url):
        next(http.auth.auth_flow(request))
    encoding = request.headers.encoding
    return [(key.decode(encoding), value.decode(encoding)) for key, value in request.headers.raw]


CONNECTOR_HEADERS: list[dict[str, str]] = [{}, {"Accept": "text/csv", "X-Key": "a"}, {"authorization": "old"}]
REQUEST_HEADERS: list[Any] = [
    None,
    {},
    {"accept": "application/json"},
    {"X-KEY": "b", "Host": "example.org"},
    {"User-Agent": "mine", "AUTHORIZATION": "given"},
    [("X-A", "1"), ("x-a", "2")],
]
AUTHS: list[httpx.Auth | None] = [
    None,
    HeaderAuth("Authorization", "Bearer t"),
    HeaderAuth("x-key", "k"),
    httpx.BasicAuth("u", "p"),
]


@pytest.mark.parametrize(
    ("connector_headers", "headers", "auth"),
    list(itertools.product(CONNECTOR_HEADERS, REQUEST_HEADERS, AUTHS)),
)
@pytest.mark.parametrize("base", ["http://127.0.0.1:8080/api", "https://EXAMPLE.org", "http://127.0.0.1/"])
async def test_wire_headers_are_those_the_transport_writes(
    client: httpx.AsyncClient,
    connector_headers: dict[str, str],
    headers: Any,
    auth: httpx.Auth | None,
    base: str,
) -> None:
    http = ConnectorHTTP(client, base_url=base, headers=connector_headers, auth=auth)
    target = http.resolve_url("items")
    for _ in range(2):  # computed, then remembered
        wire = wire_headers(http, target, headers, http.auth if http.same_origin(target) else None)
        assert wire is not None
        assert list(wire) == transport_headers(http, "items", headers)
    other = http.resolve_url("https://elsewhere.example/x")  # another origin: no auth header
    assert list(wire_headers(http, other, headers, None) or ()) == transport_headers(
        http, "https://elsewhere.example/x", headers
    )


@pytest.mark.parametrize(
    ("headers", "auth"),
    [
        ({"X-Name": "é"}, None),
        ({"X-Number": 1}, None),
        ({b"X-Bytes": "v"}, None),
        ({}, HeaderAuth("Authorization", "Bearer é")),
        ({}, QueryParamAuth("key", "v")),  # not a header flow
    ],
)
async def test_headers_the_lean_path_leaves_to_httpx(
    client: httpx.AsyncClient, headers: Any, auth: Any
) -> None:
    http = ConnectorHTTP(client, base_url="http://127.0.0.1:8080/", auth=auth)
    target = http.resolve_url("x")
    assert wire_headers(http, target, headers, auth) is None
    assert wire_headers(http, target, headers, auth) is None  # remembered as such


def test_wire_headers_follow_the_client_headers(client: httpx.AsyncClient) -> None:
    http = ConnectorHTTP(client, base_url="http://127.0.0.1:8080/")
    target = http.resolve_url("x")
    before = wire_headers(http, target, None, None)
    client.headers["X-Client"] = "1"
    try:
        after = wire_headers(http, target, None, None)
        assert after != before
        assert list(after or ()) == transport_headers(http, "x", None)
    finally:
        del client.headers["X-Client"]


# Operations whose source says whether they return request_json's value untouched.

connector = Connector(key="t2pass", title="T2", version="1.0.0", description="Returns what it fetched")


class Params(BaseModel):
    url: str
    mode: str = "plain"


@connector.action()
async def fetch(ctx: Context, params: Params) -> Any:
    """Return the decoded body."""
    return await ctx.request_json("GET", params.url)


@connector.action()
async def fetch_either(context: Context, params: Params) -> Any:
    """Both returns are request_json's value."""
    if params.mode == "plain":
        return await context.request_json("GET", params.url)
    return await context.request_json("GET", params.url, params={"mode": params.mode})


@connector.action()
async def fetch_and_change(ctx: Context, params: Params) -> Any:
    """Change the decoded body before returning it."""
    body = await ctx.request_json("GET", params.url)
    body["when"] = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    body["pair"] = (1, 2)
    return body


@connector.action()
async def fetch_or_keep(ctx: Context, params: Params) -> Any:
    """One return is not request_json's value."""
    body = await ctx.request_json("GET", params.url)
    if params.mode == "keep":
        body["pair"] = (1, 2)
        return body
    return await ctx.request_json("GET", params.url)


@connector.action()
async def fetch_nested(ctx: Context, params: Params) -> Any:
    """A nested function's returns are its own."""

    async def inner() -> Any:
        return {"pair": (1, 2)}

    return await ctx.request_json("GET", params.url)


def _wrapped(func: Any) -> Any:
    @functools.wraps(func)
    async def wrapper(*args: Any) -> Any:
        return await func(*args)

    return wrapper


async def _plain(ctx: Context, params: Params) -> Any:
    return await ctx.request_json("GET", params.url)


def test_which_operations_return_request_json_untouched() -> None:
    assert returns_request_json(connector.operation("fetch").func)  # type: ignore[union-attr]
    assert returns_request_json(connector.operation("fetch_either").func)  # type: ignore[union-attr]
    assert returns_request_json(connector.operation("fetch_nested").func)  # type: ignore[union-attr]
    assert not returns_request_json(connector.operation("fetch_and_change").func)  # type: ignore[union-attr]
    assert not returns_request_json(connector.operation("fetch_or_keep").func)  # type: ignore[union-attr]
    assert not returns_request_json(_wrapped(_plain))
    namespace: dict[str, Any] = {}
    exec("async def made(ctx, params):\n    return await ctx.request_json('GET', 'x')\n", namespace)
    assert not returns_request_json(namespace["made"])  # no source to read
    assert not returns_request_json(lambda ctx, params: ctx.request_json("GET", "x"))


BODIES: dict[str, bytes] = {
    "object": b'{"a": [1, 2.5, -0.0, "\\u00e9\\u2028", true, null, {"b": {}}], "": 1e300}',
    "list": b'[{"id": 1}, {"id": 2, "tags": ["x"]}]',
    "scalar": b'"text"',
    "big": b'{"n": 123456789012345678901234567890}',  # decoded by the standard library
    "empty": b"",
}


@pytest.fixture
async def mocked() -> AsyncIterator[httpx.AsyncClient]:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=BODIES[request.url.path.strip("/")])

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as c:
        yield c


CHANGED = {"when": "2026-11-26T00:00:00Z", "pair": [1, 2]}


@pytest.mark.parametrize("body", list(BODIES))
@pytest.mark.parametrize(
    ("name", "mode", "skips"),
    [
        ("fetch", "plain", True),
        ("fetch_either", "plain", True),
        ("fetch_either", "other", True),
        ("fetch_nested", "plain", True),
        ("fetch_and_change", "plain", False),
        ("fetch_or_keep", "plain", False),  # one of its returns is not request_json's value: never skipped
        ("fetch_or_keep", "keep", False),
    ],
)
async def test_outputs_equal_the_converted_value_whether_the_round_trip_is_skipped_or_not(
    mocked: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, body: str, name: str, mode: str, skips: bool
) -> None:
    operation = connector.operation(name)
    assert operation is not None
    converted: list[Any] = []
    convert = invoke_module._convert

    def spy(op: Any, value: Any, what: str = "output") -> tuple[Any, Any]:
        converted.append(value)
        return convert(op, value, what)

    monkeypatch.setattr(invoke_module, "_convert", spy)
    params = {"url": f"http://upstream.test/{body}", "mode": mode}
    changes = name == "fetch_and_change" or mode == "keep"
    if changes and body != "object" and body != "big":  # the operation indexes a list, a string, None
        with pytest.raises(Exception, match="connector raised"):
            await invoke_action(connector, operation, params, CallOptions(http_client=mocked))
        return
    output = await invoke_action(connector, operation, params, CallOptions(http_client=mocked))
    assert (not converted) == (skips and body in ("object", "list", "scalar"))  # decoded by orjson
    ctx = Context(connector="t", operation="t", http=ConnectorHTTP(mocked))
    expected = convert(operation, await ctx.request_json("GET", params["url"]))[1]
    if changes:
        expected.update(CHANGED if name == "fetch_and_change" else {"pair": [1, 2]})
    assert output == expected
    assert type(output) is type(expected)


async def test_resume_goes_on_as_send_would() -> None:
    request = httpx.Request("GET", "http://upstream.test/x")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    answers = iter([httpx.Response(200, request=request)])

    async def again() -> httpx.Response:
        return next(answers)

    policy = RetryPolicy(retries=1, sleep=sleep, initial_wait=0.0)
    busy = httpx.Response(503, request=request)
    assert (await policy.budget().resume(request, busy, again)).status_code == 200
    fine = httpx.Response(201, request=request)
    assert await policy.budget().resume(request, fine, again) is fine
    failed = ConnectionFailed("refused")
    with pytest.raises(ConnectionFailed):
        await RetryPolicy.none().budget().resume(request, failed, again)
    post = httpx.Request("POST", "http://upstream.test/x", content=b"x")
    assert await policy.budget().resume(post, busy, again) is busy  # not replayable
    assert waits == [0.0]


def test_declared_any_actions_remember_whether_they_pass_the_value_through() -> None:
    for name, passes in (("fetch", True), ("fetch_either", True), ("fetch_and_change", False)):
        operation = connector.operation(name)
        assert operation is not None
        assert (operation.passthrough is operation.func) == passes
        assert (operation.passthrough is None) == (not passes)


async def test_a_replaced_function_is_not_trusted(
    mocked: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    operation = connector.operation("fetch")
    assert operation is not None

    async def changing(ctx: Context, params: Params) -> Any:
        body = await ctx.request_json("GET", params.url)
        body["pair"] = (1, 2)
        return body

    monkeypatch.setattr(operation, "func", changing)
    output = await invoke_action(
        connector, operation, {"url": "http://upstream.test/object"}, CallOptions(http_client=mocked)
    )
    assert output["pair"] == [1, 2]  # converted: the tuple became a list
