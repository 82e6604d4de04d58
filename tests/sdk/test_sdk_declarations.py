"""Declaring connectors and operations: what is accepted, what is refused and with which message."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pydantic import AliasPath, BaseModel, Field

from app.sdk import (
    ApiKey,
    BasicAuth,
    BearerToken,
    Connector,
    ConnectorDefinitionError,
    Context,
    NoAuth,
    OAuth2,
    Poll,
    RateLimit,
)
from app.sdk.testing import check_connector


class Repo(BaseModel):
    owner: str = Field(description="User or organisation login")
    repo: str = Field(description="Repository name")


class Issue(BaseModel):
    number: int
    title: str
    author: str = Field(validation_alias=AliasPath("user", "login"))
    created_at: datetime


class NotAModel:
    pass


def make(**overrides: Any) -> Connector:
    values: dict[str, Any] = {
        "key": "demo",
        "version": "1.0.0",
        "title": "Demo",
        "description": "A demo API.",
        "base_url": "https://api.demo.test/v1",
    }
    values.update(overrides)
    return Connector(**values)


def test_a_complete_connector_describes_itself() -> None:
    github = make(
        key="github",
        title="GitHub",
        auth=[
            OAuth2(
                authorize_url="https://github.com/login/oauth/authorize",
                token_url="https://github.com/login/oauth/access_token",
                scopes=["repo"],
            ),
            BearerToken(label="Personal access token"),
        ],
        rate_limit=RateLimit(5000, per="hour"),
        test_request=("get", "/user"),
        docs_url="https://docs.github.com/rest",
    )

    @github.action(title="List issues")
    async def list_issues(ctx: Context, p: Repo) -> list[Issue]:
        """A repository's open issues, newest first."""
        return []

    @github.poll(title="New issue", dedupe=lambda issue: issue.number)
    async def new_issue(ctx: Context, p: Repo, cursor: datetime | None) -> Poll[Issue]:
        """Issues opened since the last poll."""
        return Poll(items=[], cursor=cursor)

    assert list(github.operations) == ["list_issues", "new_issue", "request"]
    assert [op.name for op in github.actions()] == ["list_issues", "request"]
    assert [op.name for op in github.polls()] == ["new_issue"]
    op = github.operation("list_issues")
    assert op is not None
    assert op.uses == "github.list_issues"
    assert op.kind == "action"
    assert op.title == "List issues"
    assert op.description == "A repository's open issues, newest first."
    assert op.input_model is Repo
    assert op.input_schema["properties"]["owner"]["description"] == "User or organisation login"
    assert op.output_schema["type"] == "array"
    item = op.output_schema["$defs"]["Issue"]
    assert set(item["properties"]) == {"number", "title", "author", "created_at"}
    assert item["properties"]["created_at"]["format"] == "date-time"

    described = github.describe()
    assert described["key"] == "github"
    assert described["auth_kinds"] == ["oauth2", "bearer"]
    assert described["auth"][0]["scopes"] == ["repo"]
    assert described["rate_limit"] == {"requests": 5000, "per": "hour"}
    assert [o["name"] for o in described["operations"]] == ["list_issues", "request"]
    poll = described["polls"][0]
    assert poll["kind"] == "poll"
    assert poll["dedupe"] is True
    assert poll["output_schema"]["type"] == "array"
    assert {"type": "null"} in poll["cursor_schema"]["anyOf"]
    assert github.test_request == ("GET", "/user")
    assert check_connector(github) == []


def test_function_stays_callable_after_decoration() -> None:
    demo = make()

    async def ping(ctx: Context, p: Repo) -> dict[str, Any]:
        """Ping."""
        return {}

    assert demo.action(title="Ping")(ping) is ping


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"key": "Bad-Key"}, "connector key 'Bad-Key' must be"),
        ({"key": "core"}, "not be `core`"),
        ({"version": "1.0"}, "version '1.0' is not a semantic version"),
        ({"version": "v1.0.0"}, "is not a semantic version"),
        ({"title": " "}, "a title is required"),
        ({"description": ""}, "a description is required"),
        ({"base_url": "ftp://x.test"}, "base_url must be an absolute http(s) URL"),
        ({"base_url": "https://x.test/?a=1"}, "without query or fragment"),
        ({"base_url": "https://{0}.x.test"}, "placeholders must be names"),
        ({"auth": ["token"]}, "auth entries must be"),
        ({"auth": [BearerToken(), BearerToken(label="again")]}, "auth kind 'bearer' is declared twice"),
        ({"rate_limit": 10}, "rate_limit must be a RateLimit"),
        ({"test_request": ("FETCH", "/x")}, "test_request must be a (METHOD, path) pair"),
        ({"docs_url": "javascript:alert(1)"}, "docs_url must be an http(s) URL"),
    ],
)
def test_connector_metadata_is_checked(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConnectorDefinitionError) as caught:
        make(**overrides)
    assert message in caught.value.message


def test_semver_with_prerelease_and_build_is_accepted() -> None:
    assert make(version="2.1.0-beta.1+build.5").version == "2.1.0-beta.1+build.5"


def test_missing_docstring() -> None:
    demo = make()
    with pytest.raises(ConnectorDefinitionError, match="operation 'nodoc': a docstring is required"):

        @demo.action(title="No doc")
        async def nodoc(ctx: Context, p: Repo) -> int:
            return 1


def test_params_must_be_a_pydantic_model() -> None:
    demo = make()
    with pytest.raises(ConnectorDefinitionError, match="the parameters must be a pydantic model"):

        @demo.action()
        async def bad(ctx: Context, p: NotAModel) -> int:
            """Doc."""
            return 1

    with pytest.raises(ConnectorDefinitionError, match="the parameters must be a pydantic model"):

        @demo.action()
        async def bad_dict(ctx: Context, p: dict[str, Any]) -> int:
            """Doc."""
            return 1


def test_type_hints_required() -> None:
    demo = make()
    with pytest.raises(ConnectorDefinitionError, match=r"type hints are required \(p lacks one\)"):

        @demo.action()
        async def no_hint(ctx: Context, p) -> int:  # type: ignore[no-untyped-def]
            """Doc."""
            return 1

    with pytest.raises(
        ConnectorDefinitionError, match=r"type hints are required \(the return value lacks one\)"
    ):

        @demo.action()
        async def no_return(ctx: Context, p: Repo):  # type: ignore[no-untyped-def]
            """Doc."""
            return 1


def test_unresolvable_hint_is_reported() -> None:
    demo = make()
    with pytest.raises(ConnectorDefinitionError, match="cannot resolve its type hints"):

        @demo.action()
        async def ghost(ctx: Context, p: Repo) -> DoesNotExist:  # type: ignore[name-defined]  # noqa: F821
            """Doc."""


def test_must_be_async() -> None:
    demo = make()
    with pytest.raises(ConnectorDefinitionError, match="must be an `async def` function"):

        @demo.action()  # type: ignore[type-var]
        def sync(ctx: Context, p: Repo) -> int:
            """Doc."""
            return 1

    with pytest.raises(ConnectorDefinitionError, match="must be an `async def` function"):

        @demo.action()  # type: ignore[type-var]
        async def agen(ctx: Context, p: Repo):  # type: ignore[no-untyped-def]
            """Doc."""
            yield 1


def test_signature_shape() -> None:
    demo = make()
    with pytest.raises(
        ConnectorDefinitionError, match=r"the signature must be \(ctx: Context, params: Model\)"
    ):

        @demo.action()
        async def three(ctx: Context, p: Repo, extra: int) -> int:
            """Doc."""
            return 1

    with pytest.raises(ConnectorDefinitionError, match="the first parameter must be annotated `Context`"):

        @demo.action()
        async def no_ctx(ctx: int, p: Repo) -> int:
            """Doc."""
            return 1


def test_duplicate_operation_names() -> None:
    demo = make()

    @demo.action()
    async def ping(ctx: Context, p: Repo) -> int:
        """Doc."""
        return 1

    with pytest.raises(ConnectorDefinitionError, match="operation 'ping': declared twice"):

        @demo.action()
        async def ping(ctx: Context, p: Repo) -> int:
            """Doc."""
            return 2


def test_bad_operation_name() -> None:
    demo = make()
    with pytest.raises(ConnectorDefinitionError, match="operation names are lower-case"):

        @demo.action()
        async def _private(ctx: Context, p: Repo) -> int:
            """Doc."""
            return 1


def test_poll_requires_dedupe_and_poll_return() -> None:
    demo = make()
    with pytest.raises(ConnectorDefinitionError, match="a poll must declare dedupe="):

        @demo.poll(title="New")
        async def new_items(ctx: Context, p: Repo, cursor: str | None) -> Poll[Issue]:
            """Doc."""
            return Poll(items=[])

    with pytest.raises(ConnectorDefinitionError, match=r"a poll must return Poll\[Item\]"):

        @demo.poll(title="New", dedupe=lambda i: i)
        async def new_list(ctx: Context, p: Repo, cursor: str | None) -> list[Issue]:
            """Doc."""
            return []

    with pytest.raises(
        ConnectorDefinitionError, match=r"the signature must be \(ctx: Context, params: Model, cursor\)"
    ):

        @demo.poll(title="New", dedupe=lambda i: i)
        async def no_cursor(ctx: Context, p: Repo) -> Poll[Issue]:
            """Doc."""
            return Poll(items=[])

    with pytest.raises(ConnectorDefinitionError, match="an action cannot return Poll"):

        @demo.action()
        async def mixed(ctx: Context, p: Repo) -> Poll[Issue]:
            """Doc."""
            return Poll(items=[])


def test_output_type_pydantic_cannot_handle() -> None:
    demo = make()
    with pytest.raises(ConnectorDefinitionError, match="pydantic cannot handle its return type"):

        @demo.action()
        async def weird(ctx: Context, p: Repo) -> NotAModel:
            """Doc."""
            return NotAModel()


def test_builtin_request_and_override() -> None:
    demo = make()
    request = demo.operation("request")
    assert request is not None
    assert request.builtin
    assert set(request.input_schema["properties"]) >= {"method", "path", "query", "headers", "json", "body"}
    assert "request" in [op.name for op in demo.actions()]

    class Own(BaseModel):
        url: str = Field(description="URL")

    other = make(key="other")

    @other.action()
    async def request(ctx: Context, p: Repo) -> dict[str, Any]:
        """A connector may replace the built-in request."""
        return {}

    replaced = other.operation("request")
    assert replaced is not None
    assert not replaced.builtin
    assert replaced.description == "A connector may replace the built-in request."


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: ApiKey(), "exactly one of header"),
        (lambda: ApiKey(header="X", query="k"), "exactly one of header"),
        (lambda: ApiKey(query="k", prefix="Token "), "prefix=...) only applies to header"),
        (lambda: OAuth2(authorize_url="http://x.test/a", token_url="https://x.test/t"), "absolute https URL"),
        (
            lambda: OAuth2(authorize_url="https://x.test/a", token_url="https://x.test/t", scopes="repo"),
            "list",
        ),
        (lambda: RateLimit(0), "positive integer"),
        (lambda: RateLimit(10, per="week"), "must be one of second, minute, hour, day"),  # type: ignore[arg-type]
    ],
)
def test_auth_and_rate_limit_declarations_are_checked(factory: Any, message: str) -> None:
    with pytest.raises(ConnectorDefinitionError) as caught:
        factory()
    assert message in caught.value.message


def test_auth_kinds_describe_their_fields() -> None:
    assert NoAuth().describe()["fields"] == []
    assert ApiKey(header="X-Api-Key").describe()["header"] == "X-Api-Key"
    assert [f["name"] for f in BasicAuth().describe()["fields"]] == ["username", "password"]
    assert BearerToken().describe()["fields"][0] == {"name": "token", "label": "Access token", "secret": True}


def test_check_connector_reports_missing_docs() -> None:
    demo = make(auth=[BearerToken()])

    class Undocumented(BaseModel):
        q: str

    @demo.action()
    async def search(ctx: Context, p: Undocumented) -> list[str]:
        """Search."""
        return []

    problems = check_connector(demo)
    assert "demo: declares auth but no test_request to verify a connection" in problems
    assert "demo.search: parameter 'q' has no description (Field(description=...))" in problems


def test_templated_base_url() -> None:
    demo = make(base_url="https://{subdomain}.zendesk.test/api/v2")
    assert demo.base_url_for({"subdomain": "acme"}) == "https://acme.zendesk.test/api/v2"
    from app.errors import StepError

    for bad in ({"subdomain": "evil.test/x"}, {"subdomain": "a@b"}, {}):
        with pytest.raises(StepError, match="the connection must give `subdomain`"):
            demo.base_url_for(bad)
