"""``ConnectorCaller`` (the engine's OperationCaller) and the testing harness built on the same invocation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from pydantic import AliasPath, BaseModel, Field

from app.engine.types import OperationCall
from app.errors import NotFound, StepError
from app.registry import Registry
from app.runtime.caller import ConnectorCaller
from app.sdk import (
    BearerToken,
    Connector,
    Context,
    InvalidResponse,
    LinkHeader,
    NoAuth,
    Poll,
    RateLimit,
    RateLimited,
    StepTimeout,
)
from app.sdk.http import build_http_client
from app.sdk.testing import run_action, run_poll, settings_for_tests

demo = Connector(
    key="demo",
    version="1.2.3",
    title="Demo",
    description="A demo API for the caller tests.",
    base_url="https://api.demo.test",
    auth=[BearerToken()],
    test_request=("GET", "/me"),
)


class Repo(BaseModel):
    owner: str = Field(description="Owner")
    repo: str = Field(description="Repository")
    limit: int = Field(default=10, ge=1, le=100, description="How many")


class Issue(BaseModel):
    number: int
    title: str
    author: str = Field(validation_alias=AliasPath("user", "login"))
    created_at: datetime


class Empty(BaseModel):
    pass


class Fail(BaseModel):
    kind: str = Field(description="What to raise")


@demo.action(title="List issues")
async def list_issues(ctx: Context, p: Repo) -> list[Issue]:
    """Open issues of a repository."""
    ctx.log.info("listing %s/%s with token %s", p.owner, p.repo, ctx.credentials["token"])
    items = ctx.paginate(f"/repos/{p.owner}/{p.repo}/issues", strategy=LinkHeader(), limit=p.limit)
    return [Issue.model_validate(raw) async for raw in items]


@demo.action(title="Fail on purpose")
async def fail(ctx: Context, p: Fail) -> dict[str, Any]:
    """Raise the requested exception."""
    if p.kind == "value":
        raise ValueError("bad thing happened")
    if p.kind == "step":
        raise StepError("a precise step error", code="custom")
    if p.kind == "timeout":
        raise httpx.ReadTimeout("slow")
    if p.kind == "shape":
        Issue.model_validate({"number": "x"})
    if p.kind == "wrong_output":
        return "not a dict"  # type: ignore[return-value]
    return {}


@demo.poll(title="New issue", dedupe=lambda issue: issue.number)
async def new_issue(ctx: Context, p: Repo, cursor: datetime | None) -> Poll[Issue]:
    """Issues created after the cursor; the first poll only records a baseline."""
    raw = await ctx.request_json("GET", f"/repos/{p.owner}/{p.repo}/issues")
    issues = [Issue.model_validate(item) for item in raw]
    newest = max((i.created_at for i in issues), default=cursor)
    if cursor is None:
        return Poll(items=[], cursor=newest)
    return Poll(items=[i for i in issues if i.created_at > cursor], cursor=newest)


public = Connector(
    key="public",
    version="0.1.0",
    title="Public",
    description="No auth needed.",
    base_url="https://public.test",
    auth=[NoAuth()],
    rate_limit=RateLimit(1, per="day"),
)


@public.action(title="Ping")
async def ping(ctx: Context, p: Empty) -> dict[str, Any]:
    """Ping the API."""
    return await ctx.request_json("GET", "/ping")


ISSUES = [
    {"number": 2, "title": "Second", "user": {"login": "bob"}, "created_at": "2024-05-02T10:00:00Z"},
    {"number": 1, "title": "First", "user": {"login": "ann"}, "created_at": "2024-05-01T10:00:00Z"},
]


async def resolver(account_id: str | None, name: str) -> Mapping[str, Any] | None:
    table = {("acc1", "gh"): {"kind": "bearer", "token": "tok-acc1-secret"}}
    if name == "raises":
        raise NotFound("the connection store says no")
    return table.get((account_id or "", name))


@pytest.fixture
async def caller() -> AsyncIterator[ConnectorCaller]:
    settings = settings_for_tests()
    async with build_http_client(settings) as client:
        yield ConnectorCaller(
            Registry.from_connectors([demo, public]), client, settings, resolver
        ).for_account("acc1")


def call(
    uses: str, params: dict[str, Any], connection: str | None = "gh", log: list[str] | None = None
) -> OperationCall:
    return OperationCall(
        uses=uses, params=params, connection=connection, run_id="r1", step_id="s1", attempt=1, log=log
    )


@respx.mock
async def test_call_returns_json_and_logs(caller: ConnectorCaller) -> None:
    route = respx.get("https://api.demo.test/repos/o/r/issues").respond(json=ISSUES)
    log: list[str] = []
    out = await caller(call("demo.list_issues", {"owner": "o", "repo": "r"}, log=log))
    assert out == [
        {"number": 2, "title": "Second", "author": "bob", "created_at": "2024-05-02T10:00:00Z"},
        {"number": 1, "title": "First", "author": "ann", "created_at": "2024-05-01T10:00:00Z"},
    ]
    assert route.calls.last.request.headers["Authorization"] == "Bearer tok-acc1-secret"
    assert log == ["INFO listing o/r with token ***"]


async def test_invalid_params(caller: ConnectorCaller) -> None:
    with pytest.raises(StepError) as caught:
        await caller(call("demo.list_issues", {"owner": "o", "limit": 0, "extra": 1}))
    exc = caught.value
    assert exc.code == "invalid_params"
    assert exc.message.startswith("invalid parameters for demo.list_issues: repo: Field required")
    paths = {d["path"] for d in exc.details}
    assert paths == {"repo", "limit"}
    assert all("input" not in d for d in exc.details)


async def test_params_must_be_an_object(caller: ConnectorCaller) -> None:
    with pytest.raises(StepError, match=r"demo\.list_issues: `with` must be an object, got list") as caught:
        await caller(call("demo.list_issues", [1, 2]))  # type: ignore[arg-type]
    assert caught.value.code == "invalid_params"


@pytest.mark.parametrize(
    ("uses", "code", "message"),
    [
        ("nope.x", "unknown_connector", "no connector 'nope' is installed"),
        ("demo.nope", "unknown_operation", "connector 'demo' has no operation 'nope'"),
        ("demo.new_issue", "unknown_operation", "connector 'demo' has no operation 'new_issue'"),
    ],
)
async def test_unknown_operations(caller: ConnectorCaller, uses: str, code: str, message: str) -> None:
    with pytest.raises(StepError) as caught:
        await caller(call(uses, {}))
    assert caught.value.code == code
    assert caught.value.message.startswith(message)


async def test_connection_errors(caller: ConnectorCaller) -> None:
    with pytest.raises(StepError, match="no connection named 'unknown'") as caught:
        await caller(call("demo.list_issues", {"owner": "o", "repo": "r"}, connection="unknown"))
    assert caught.value.code == "connection_not_found"
    with pytest.raises(StepError, match="connection 'raises': the connection store says no"):
        await caller(call("demo.list_issues", {"owner": "o", "repo": "r"}, connection="raises"))
    with pytest.raises(StepError, match=r"demo needs a connection \(accepted auth: bearer\)") as caught:
        await caller(call("demo.list_issues", {"owner": "o", "repo": "r"}, connection=None))
    assert caught.value.code == "connection_required"
    other_account = caller.for_account("acc2")
    with pytest.raises(StepError, match="no connection named 'gh'"):
        await other_account(call("demo.list_issues", {"owner": "o", "repo": "r"}))


async def test_no_resolver_means_clear_error() -> None:
    settings = settings_for_tests()
    async with build_http_client(settings) as client:
        bare = ConnectorCaller(Registry.from_connectors([demo]), client, settings)
        with pytest.raises(StepError, match="this server has no stored connections yet") as caught:
            await bare(call("demo.list_issues", {"owner": "o", "repo": "r"}))
    assert caught.value.code == "connection_not_found"


@pytest.mark.parametrize(
    ("kind", "error", "code", "message"),
    [
        ("value", StepError, "connector_error", "connector raised ValueError: bad thing happened"),
        ("step", StepError, "custom", "a precise step error"),
        ("timeout", StepTimeout, "timeout", "timed out (ReadTimeout)"),
        (
            "shape",
            InvalidResponse,
            "invalid_response",
            "demo.fail: the upstream data has an unexpected shape",
        ),
        ("wrong_output", StepError, "invalid_output", "demo.fail returned an output that does not match"),
    ],
)
async def test_exceptions_become_step_errors(
    caller: ConnectorCaller, kind: str, error: type[StepError], code: str, message: str
) -> None:
    with pytest.raises(error) as caught:
        await caller(call("demo.fail", {"kind": kind}))
    assert caught.value.code == code
    assert message in caught.value.message


@respx.mock
async def test_upstream_status_errors_keep_their_type(caller: ConnectorCaller) -> None:
    respx.get("https://api.demo.test/repos/o/r/issues").respond(429, headers={"Retry-After": "5"})
    with pytest.raises(RateLimited) as caught:
        await caller(call("demo.list_issues", {"owner": "o", "repo": "r"}))
    assert caught.value.retry_after == 5.0
    assert caught.value.retry_kind == "http_429"


@respx.mock
async def test_builtin_request_operation(caller: ConnectorCaller) -> None:
    route = respx.post("https://api.demo.test/things").respond(201, json={"id": 7}, headers={"X-Req": "a"})
    out = await caller(call("demo.request", {"method": "POST", "path": "/things", "json": {"name": "x"}}))
    assert out["status"] == 201
    assert out["body"] == {"id": 7}
    assert out["headers"]["x-req"] == "a"
    sent = route.calls.last.request
    assert sent.headers["Authorization"] == "Bearer tok-acc1-secret"
    assert sent.content == b'{"name":"x"}'
    with pytest.raises(StepError, match="is outside the connector's base URL") as caught:
        await caller(call("demo.request", {"path": "https://evil.test/steal"}))
    assert caught.value.code == "invalid_params"


@respx.mock
async def test_builtin_request_raise_for_status(caller: ConnectorCaller) -> None:
    respx.get("https://api.demo.test/missing").respond(404, json={"message": "no"})
    out = await caller(call("demo.request", {"path": "missing", "raise_for_status": False}))
    assert out["status"] == 404
    with pytest.raises(StepError, match="answered 404 Not Found: no"):
        await caller(call("demo.request", {"path": "missing"}))


@respx.mock
async def test_declared_rate_limit_is_enforced_per_connection(caller: ConnectorCaller) -> None:
    respx.get("https://public.test/ping").respond(json={"pong": True})
    assert await caller(call("public.ping", {}, connection=None)) == {"pong": True}
    with pytest.raises(RateLimited, match="1 requests per day for public is used up"):
        await caller(call("public.ping", {}, connection=None))


@respx.mock
async def test_poll_through_caller(caller: ConnectorCaller) -> None:
    respx.get("https://api.demo.test/repos/o/r/issues").respond(json=ISSUES)
    first = await caller.poll("demo.new_issue", {"owner": "o", "repo": "r"}, None, connection="gh")
    assert first.items == []
    assert first.cursor == "2024-05-02T10:00:00Z"
    again = await caller.poll(
        "demo.new_issue", {"owner": "o", "repo": "r"}, "2024-05-01T12:00:00Z", connection="gh"
    )
    assert [item["number"] for item in again.items] == [2]
    assert again.keys == ["2"]
    assert again.cursor == "2024-05-02T10:00:00Z"
    with pytest.raises(StepError, match="does not fit its cursor type") as caught:
        await caller.poll("demo.new_issue", {"owner": "o", "repo": "r"}, "not a date", connection="gh")
    assert caught.value.code == "invalid_cursor"
    with pytest.raises(StepError, match="has no polling trigger 'list_issues'"):
        await caller.poll("demo.list_issues", {"owner": "o", "repo": "r"}, None, connection="gh")


@respx.mock
async def test_harness_runs_like_the_server() -> None:
    respx.get("https://api.demo.test/repos/o/r/issues").respond(json=ISSUES)
    out = await run_action(
        demo, "list_issues", {"owner": "o", "repo": "r", "limit": 1}, credentials={"token": "t"}
    )
    assert [i["number"] for i in out] == [2]
    polled = await run_poll(
        demo,
        "new_issue",
        {"owner": "o", "repo": "r"},
        cursor="2024-04-01T00:00:00Z",
        credentials={"token": "t"},
    )
    assert polled.keys == ["2", "1"]
    with pytest.raises(KeyError, match="has no operation 'missing'"):
        await run_action(demo, "missing", {})


async def test_harness_clock_is_injectable() -> None:
    clock_demo = Connector(key="clock", version="1.0.0", title="Clock", description="Time.")

    @clock_demo.action(title="Now")
    async def now(ctx: Context, p: Empty) -> datetime:
        """The time."""
        return ctx.now()

    fixed = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert await run_action(clock_demo, "now", {}, clock=lambda: fixed) == "2024-01-02T03:04:05Z"
