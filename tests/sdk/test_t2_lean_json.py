"""Task T2: ``ctx.request_json`` on the lean direct path (``app.sdk.direct_json``) against real servers.

Every scenario runs three times over the same aiohttp transport: the lean path (no ``httpx`` objects
for a plain 2xx answer), the direct path with its ``httpx`` objects (the lean plan switched off) and
httpx's client (the general path). The outcomes must be equal: the same value, the same typed error
with the same message and details, the same requests reaching the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from app.sdk import direct_json
from app.sdk.auth import HeaderAuth, QueryParamAuth
from app.sdk.context import Context
from app.sdk.errors import ConnectionFailed
from app.sdk.http import ConnectorHTTP
from app.sdk.retries import RetryPolicy
from tests.sdk.test_fastpath_direct import LIMIT, SECRET, Spy, outcome_of
from tests.sdk.test_fastpath_direct import client as client  # the direct path's tests' client
from tests.sdk.test_fastpath_direct import server as server  # the routes of the direct path's tests

Make = Callable[..., ConnectorHTTP]


class Counts:
    """How often the lean plan was made, and how often a request object was built after all."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, lean: bool) -> None:
        self.plans = 0
        self.built = 0
        plan = direct_json._plan
        build = ConnectorHTTP.build_request

        def counted_plan(*args: Any) -> Any:
            self.plans += 1
            return plan(*args) if lean else None

        def counted_build(http: ConnectorHTTP, *args: Any, **kwargs: Any) -> httpx.Request:
            self.built += 1
            return build(http, *args, **kwargs)

        monkeypatch.setattr(direct_json, "_plan", counted_plan)
        monkeypatch.setattr(ConnectorHTTP, "build_request", counted_build)


async def three_ways(
    client: httpx.AsyncClient,
    server: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    call: Callable[[Context], Any],
    *,
    make: Make | None = None,
    sends: str = "general",
) -> tuple[Any, Counts]:
    """``call(ctx)`` on the lean, the direct and the general path; the (equal) outcome and the lean counts.

    ``sends``: which paths reach httpx's client: the general one; ``all`` (a URL with userinfo, which
    the direct paths leave to it); ``none`` (a request failing before it is sent).
    """
    build = make or (lambda: ConnectorHTTP(client, base_url=server["base"], max_response_bytes=LIMIT))
    outcomes: list[Any] = []
    hits: list[dict[str, int]] = []
    spy = Spy(client)
    lean_counts: Counts | None = None
    for way in ("lean", "direct", "general"):
        with monkeypatch.context() as patch:
            counts = Counts(patch, lean=way == "lean")
            http = build()
            if way == "general":
                http._direct = None
            before_hits = dict(server["hits"])
            before_sends = spy.calls
            try:
                result: Any = await call(Context(connector="t", operation="t", http=http))
            except Exception as exc:
                result = exc
            outcomes.append(outcome_of(result))
            hits.append(
                {k: v - before_hits.get(k, 0) for k, v in server["hits"].items() if v != before_hits.get(k)}
            )
            expected = {"general": way == "general", "all": True, "none": False}[sends]
            assert (spy.calls > before_sends) == expected, way
            if way == "lean":
                lean_counts = counts
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert hits[0] == hits[1] == hits[2]
    assert lean_counts is not None
    return outcomes[0], lean_counts


@pytest.mark.parametrize(
    "headers",
    [{"X-Extra": "x"}, [("X-Extra", "1"), ("x-extra", "x")], httpx.Headers({"X-Extra": "x"})],
    ids=["dict", "pairs", "httpx"],
)
async def test_a_plain_answer_is_read_without_httpx_objects(
    client: httpx.AsyncClient, server: dict[str, Any], monkeypatch: pytest.MonkeyPatch, headers: Any
) -> None:
    def call(ctx: Context) -> Any:
        return ctx.request_json("GET", "echo?b=2", params={"a": "1"}, headers=headers)

    outcome, counts = await three_ways(client, server, monkeypatch, call)
    assert outcome["query"] == "b=2&a=1"
    assert [name for name, _ in outcome["headers"]].count("x-extra") == 1
    assert ["x-extra", "x"] in outcome["headers"]
    assert (counts.plans, counts.built) == (1, 0)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("items", "list"),  # big integers: decoded by the standard library, kept exact
        ("cookie", "dict"),
        ("zipped", "dict"),  # Content-Encoding: decoded by httpx's decoders
        ("redirect", "dict"),  # followed hop by hop, each one checked
        ("text", "InvalidResponse"),
        ("missing/x", "NotFound"),
        ("loop", "UpstreamError"),
        ("declared", "InvalidResponse"),
        ("streamed", "InvalidResponse"),
        ("bomb", "InvalidResponse"),
        ("hang", "StepTimeout"),
    ],
)
async def test_every_answer_reads_alike_on_the_three_paths(
    client: httpx.AsyncClient,
    server: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    expected: str,
) -> None:
    outcome, counts = await three_ways(client, server, monkeypatch, lambda ctx: ctx.request_json("GET", path))
    kind = outcome.get("type") if isinstance(outcome, dict) and "type" in outcome else type(outcome).__name__
    assert kind == expected
    assert counts.plans == 1
    if path == "items":
        assert outcome[3] == {"id": 3, "big": 2**70 + 3}


async def test_a_smaller_connector_limit_applies_on_the_lean_path(
    client: httpx.AsyncClient, server: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    make = lambda: ConnectorHTTP(client, base_url=server["base"], max_response_bytes=100)  # noqa: E731
    outcome, _ = await three_ways(
        client, server, monkeypatch, lambda ctx: ctx.request_json("GET", "items"), make=make
    )
    assert outcome["type"] == "InvalidResponse"
    assert "exceeds 100 bytes" in outcome["message"]


@pytest.mark.parametrize(
    "auth",
    [
        HeaderAuth("Authorization", f"Bearer {SECRET}"),
        HeaderAuth("x-api-key", SECRET),
        httpx.BasicAuth("u", SECRET),
        QueryParamAuth("key", SECRET),  # not a header: the direct path with its objects
    ],
    ids=["bearer", "api-key", "basic", "query"],
)
async def test_auths_reach_the_server_alike_and_secrets_stay_masked(
    client: httpx.AsyncClient, server: dict[str, Any], monkeypatch: pytest.MonkeyPatch, auth: httpx.Auth
) -> None:
    def make() -> ConnectorHTTP:
        return ConnectorHTTP(
            client,
            base_url=server["base"],
            max_response_bytes=LIMIT,
            auth=auth,
            headers={"X-API-KEY": "connector-default", "Authorization": "replaced"},
            secrets=[SECRET],
        )

    outcome, counts = await three_ways(
        client, server, monkeypatch, lambda ctx: ctx.request_json("GET", "echo"), make=make
    )
    sent = [name for name, _ in outcome["headers"]]
    assert sent.count("authorization") == 1
    assert sent.count("x-api-key") == 1
    assert counts.built == (1 if isinstance(auth, QueryParamAuth) else 0)


async def test_a_redirect_to_another_origin_drops_the_auth_header_alike(
    client: httpx.AsyncClient, server: dict[str, Any], local_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"authorization": request.headers.get("Authorization")})

    other = await local_server({"GET /echo": echo})

    async def away(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{other}/echo")

    first = await local_server({"GET /away": away})

    def make() -> ConnectorHTTP:
        return ConnectorHTTP(client, base_url=first, auth=HeaderAuth("Authorization", "Bearer t0ken"))

    outcome, counts = await three_ways(
        client, server, monkeypatch, lambda ctx: ctx.request_json("GET", "away"), make=make
    )
    assert outcome == {"authorization": None}
    assert counts.built == 1  # the redirect needed the request object: built then


async def test_retries_after_a_429_and_after_refused_connections_go_alike(
    client: httpx.AsyncClient, server: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    notes: list[list[str]] = []
    waits: list[list[float]] = []

    def make_with(base: str) -> Make:
        def make() -> ConnectorHTTP:
            slept: list[float] = []
            noted: list[str] = []
            waits.append(slept)
            notes.append(noted)

            async def sleep(seconds: float) -> None:
                slept.append(seconds)

            policy = RetryPolicy(retries=2, sleep=sleep, initial_wait=0.0)
            return ConnectorHTTP(
                client, base_url=base, retry=policy.budget(note=noted.append), max_response_bytes=LIMIT
            )

        return make

    runs = iter(range(3))
    outcome, _ = await three_ways(
        client,
        server,
        monkeypatch,
        lambda ctx: ctx.request_json("GET", "flaky", params={"run": f"r{next(runs)}"}),
        make=make_with(server["base"]),
    )
    assert outcome == {"ok": True, "attempt": 2}
    assert waits == [[1.0], [1.0], [1.0]]
    assert [[note.replace(f"r{i}", "r") for note in noted] for i, noted in enumerate(notes)] == [notes[0]] * 3

    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    notes.clear()
    outcome, _ = await three_ways(
        client,
        server,
        monkeypatch,
        lambda ctx: ctx.request_json("GET", f"http://127.0.0.1:{port}/x"),
        make=make_with(server["base"]),
    )
    assert outcome["type"] == "ConnectionFailed"
    assert [len(noted) for noted in notes] == [2, 2, 2]  # two retries on each path, then the failure
    assert notes[0] == notes[1] == notes[2]


async def test_a_refused_connection_without_budget_is_masked_and_not_chained(
    client: httpx.AsyncClient, server: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    url = f"http://127.0.0.1:{port}/bot{SECRET}/getMe"
    make = lambda: ConnectorHTTP(client, secrets=[SECRET])  # noqa: E731
    outcome, _ = await three_ways(
        client, server, monkeypatch, lambda ctx: ctx.request_json("GET", url), make=make
    )
    assert outcome["type"] == "ConnectionFailed"
    assert SECRET not in str(outcome)
    with pytest.raises(ConnectionFailed) as caught:
        await Context(connector="t", operation="t", http=make()).request_json("GET", url)
    assert caught.value.__cause__ is None


@pytest.mark.parametrize(
    ("url", "kind", "sends"),
    [
        ("http://10.1.2.3/x", "EgressDenied", "general"),
        ("ftp://127.0.0.1/x", "EgressDenied", "general"),
        ("http://u:p@127.0.0.1/x", "EgressDenied", "all"),
        ("//elsewhere/x", "StepError", "none"),
        ("http://[::1/x", "InvalidURL", "none"),
    ],
)
async def test_refused_destinations_and_bad_urls_fail_alike(
    client: httpx.AsyncClient,
    server: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    kind: str,
    sends: str,
) -> None:
    def call(ctx: Context) -> Any:
        return ctx.request_json("GET", url)

    outcome, _ = await three_ways(client, server, monkeypatch, call, sends=sends)
    assert outcome["type"] == kind


async def test_httpx_log_lines_are_the_same_when_enabled(
    client: httpx.AsyncClient,
    server: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines: list[list[str]] = []

    async def call(ctx: Context) -> Any:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="httpx"):
            value = await ctx.request_json("GET", "echo", params={"token": SECRET})
        lines.append([record.getMessage() for record in caplog.records if record.name == "httpx"])
        return value

    make = lambda: ConnectorHTTP(client, base_url=server["base"], secrets=[SECRET])  # noqa: E731
    await three_ways(client, server, monkeypatch, call, make=make)
    assert lines[0] == lines[1] == lines[2]
    assert len(lines[0]) == 1
    assert SECRET not in lines[0][0]


@pytest.mark.parametrize(
    ("arguments", "sends"),
    [
        ({"method": "POST", "path": "echo", "json": {"a": 1}}, "general"),
        ({"path": "echo", "timeout": 5}, "general"),
        ({"path": "redirect", "follow_redirects": False}, "general"),
        ({"path": "echo", "headers": {"X-Name": "é"}}, "none"),  # httpx refuses it, before sending
        ({"path": "echo", "headers": {"X-Number": 1}}, "none"),
    ],
    ids=["body", "timeout", "follow_redirects", "not-ascii", "not-text"],
)
async def test_arguments_the_lean_path_does_not_take_go_the_direct_way(
    client: httpx.AsyncClient,
    server: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    arguments: dict[str, Any],
    sends: str,
) -> None:
    plans: list[Any] = []
    plan = direct_json._plan

    def recorded(*args: Any) -> Any:
        plans.append(plan(*args))
        return plans[-1]

    monkeypatch.setattr(direct_json, "_plan", recorded)
    options = dict(arguments)
    method, path = options.pop("method", "GET"), options.pop("path")

    def call(ctx: Context) -> Any:
        return ctx.request_json(method, path, **options)

    outcome, _ = await three_ways(client, server, monkeypatch, call, sends=sends)
    assert plans == [None]
    assert outcome is not None


async def test_nothing_of_a_call_with_secrets_is_remembered(
    client: httpx.AsyncClient, server: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def make() -> ConnectorHTTP:
        return ConnectorHTTP(
            client,
            base_url=server["base"],
            auth=HeaderAuth("Authorization", f"Bearer {SECRET}"),
            headers={"X-Conn": "1"},
            secrets=[SECRET],
        )

    def call(ctx: Context) -> Any:
        return ctx.request_json("GET", f"echo?key={SECRET}", headers={"X-Token": SECRET})

    outcome, counts = await three_ways(client, server, monkeypatch, call, make=make)
    assert counts.built == 0
    assert ["x-token", SECRET] in outcome["headers"]
    policy = client.direct.guard.policy  # type: ignore[attr-defined]
    kept = repr((direct_json._WIRE, direct_json._TARGETS, policy._text_passes))
    assert SECRET not in kept
    # Without secrets, the same request is remembered.
    plain = ConnectorHTTP(client, base_url=server["base"])
    await Context(connector="t", operation="t", http=plain).request_json("GET", "echo?key=public")
    kept = repr((direct_json._WIRE, direct_json._TARGETS, policy._text_passes))
    assert "echo?key=public" in kept


@pytest.mark.parametrize("connection_secret", [False, True], ids=["run-secret", "connection-secret"])
async def test_nothing_of_a_call_is_remembered_while_a_run_has_secrets(
    client: httpx.AsyncClient,
    server: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    connection_secret: bool,
) -> None:
    # A run's secrets reach a connector as plain values (a header or a URL made with ${{ secrets.X }}):
    # the run's masking scope keeps them out of every process-wide cache of the request path, as a
    # connection's secrets are kept out (a query-string auth puts its key in the URL sent).
    from app.runtime.masking import Masker, masking_scope
    from app.sdk import http as sdk_http
    from app.security import aiohttp_transport

    remembered: list[str] = []  # what reached a remembering (cached) parser

    def spy(cached: Callable[[str], Any]) -> Callable[[str], Any]:
        def remember(text: str) -> Any:
            remembered.append(text)
            return cached(text)

        return remember

    monkeypatch.setattr(aiohttp_transport, "_yarl_url", spy(aiohttp_transport._yarl_url))
    monkeypatch.setattr(sdk_http, "_parse_url", spy(sdk_http._parse_url))
    run_secret = "run-secret-value-42"
    if connection_secret:
        http = ConnectorHTTP(
            client, base_url=server["base"], auth=QueryParamAuth("api_key", SECRET), secrets=[SECRET]
        )
    else:
        http = ConnectorHTTP(client, base_url=server["base"])
    ctx = Context(connector="t", operation="t", http=http)
    with masking_scope(Masker([run_secret])):
        outcome = await ctx.request_json("GET", f"echo?key={run_secret}", headers={"X-Token": run_secret})
    assert ["x-token", run_secret] in outcome["headers"]
    policy = client.direct.guard.policy  # type: ignore[attr-defined]
    kept = repr((direct_json._WIRE, direct_json._TARGETS, policy._text_passes, remembered))
    assert run_secret not in kept
    assert SECRET not in kept
    # Out of the scope, the same kind of request is remembered again.
    await Context(
        connector="t", operation="t", http=ConnectorHTTP(client, base_url=server["base"])
    ).request_json("GET", "echo?key=public")
    assert any("echo?key=public" in text for text in remembered)
