"""The ``github`` connector against respx mocks shaped like GitHub's documented responses."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from app.errors import StepError
from app.registry import Registry
from app.sdk import (
    RateLimited,
    WebhookPayloadInvalid,
    WebhookRequest,
    WebhookSignatureInvalid,
)
from app.sdk.testing import check_connector, run_action, run_poll, run_webhook, settings_for_tests
from connectors.github import connector as github
from tests.connectors.error_cases import ERROR_CASES, ErrorCase, check_error_case

FIXTURES = Path(__file__).parent / "fixtures" / "github"
API = "https://api.github.com"
PAT = {"kind": "bearer", "token": "ghp_16C7e42F292c6912E7710c838347Ae178B4a"}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def assert_github_headers(request: httpx.Request, token: str = PAT["token"]) -> None:
    assert request.headers["Authorization"] == f"Bearer {token}"
    assert request.headers["Accept"] == "application/vnd.github+json"
    assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"


def test_standard_checks_and_metadata() -> None:
    assert check_connector(github) == []
    assert github.base_url == "https://api.github.com"
    assert github.auth_kinds() == ["oauth2", "bearer"]
    assert github.rate_limit is not None
    assert github.rate_limit.describe() == {"requests": 5000, "per": "hour"}
    assert github.test_request == ("GET", "/user")
    assert [op.name for op in github.actions()] == [
        "list_issues",
        "search_issues",
        "create_issue",
        "comment_on_issue",
        "list_repos",
        "search_repos",
        "request",
    ]
    assert [op.name for op in github.polls()] == ["new_issues", "new_releases"]
    assert [op.name for op in github.webhooks()] == ["events"]
    registry = Registry.load(settings_for_tests())
    assert registry.get("github") is github
    described = registry.describe("github")
    assert described["webhooks"][0]["verify"] == {
        "kind": "hmac_sha256",
        "header": "X-Hub-Signature-256",
        "prefix": "sha256=",
    }


@respx.mock
async def test_list_issues_follows_link_pages_and_drops_pull_requests() -> None:
    next_url = f"{API}/repositories/1300192/issues?state=open&per_page=100&page=2"
    first = respx.get(f"{API}/repos/acme/widgets/issues").respond(
        json=fixture("issues_page1.json"),
        headers={"Link": f'<{next_url}>; rel="next", <{API}/repositories/1300192/issues?page=2>; rel="last"'},
    )
    second = respx.get(next_url).respond(json=fixture("issues_page2.json"))
    out = await run_action(
        github,
        "list_issues",
        {"owner": "acme", "repo": "widgets", "labels": ["bug", "ui"], "since": "2024-04-01T00:00:00Z"},
        credentials=PAT,
    )
    assert [issue["number"] for issue in out] == [42, 40, 39]
    assert out[0] == {
        "number": 42,
        "title": "Crash when the config file is empty",
        "state": "open",
        "html_url": "https://github.com/acme/widgets/issues/42",
        "body": "Steps: run with an empty file.",
        "author": "ada",
        "labels": ["bug"],
        "assignees": ["grace"],
        "comments": 3,
        "repository": "acme/widgets",
        "is_pull_request": False,
        "created_at": "2024-05-02T10:00:00Z",
        "updated_at": "2024-05-02T10:00:00Z",
        "closed_at": None,
    }
    assert out[1]["labels"] == ["docs", "good first issue"]
    sent = first.calls.last.request
    assert_github_headers(sent)
    assert dict(sent.url.params) == {
        "state": "open",
        "sort": "created",
        "direction": "desc",
        "per_page": "100",
        "labels": "bug,ui",
        "since": "2024-04-01T00:00:00+00:00",
    }
    assert_github_headers(second.calls.last.request)  # same origin: the token follows the Link


@respx.mock
async def test_list_issues_stops_at_the_limit() -> None:
    route = respx.get(f"{API}/repos/acme/widgets/issues").respond(
        json=fixture("issues_page1.json"), headers={"Link": f'<{API}/next>; rel="next"'}
    )
    out = await run_action(
        github, "list_issues", {"owner": "acme", "repo": "widgets", "limit": 1}, credentials=PAT
    )
    assert [issue["number"] for issue in out] == [42]
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"owner": "acme/../admin", "repo": "widgets"}, "owner"),
        ({"owner": "acme", "repo": ".."}, "repo"),
        ({"owner": "acme", "repo": "w?x=1"}, "repo"),
        ({"owner": "acme", "repo": "widgets", "limit": 0}, "limit"),
        ({"owner": "acme", "repo": "widgets", "state": "merged"}, "state"),
        ({"owner": "acme", "repo": "widgets", "labelz": ["x"]}, "labelz"),
    ],
)
async def test_list_issues_refuses_bad_params(params: dict[str, Any], problem: str) -> None:
    with pytest.raises(StepError) as caught:
        await run_action(github, "list_issues", params, credentials=PAT)
    assert caught.value.code == "invalid_params"
    assert problem in caught.value.message


@respx.mock
async def test_search_issues() -> None:
    route = respx.get(f"{API}/search/issues").respond(json=fixture("search_issues.json"))
    out = await run_action(
        github,
        "search_issues",
        {"q": "repo:octo/parser parser", "sort": "created", "order": "asc", "limit": 5},
        credentials={"kind": "oauth2", "access_token": "gho_token"},
    )
    assert [(i["number"], i["is_pull_request"], i["repository"]) for i in out] == [
        (7, False, "octo/parser"),
        (9, True, "octo/parser"),
    ]
    sent = route.calls.last.request
    assert_github_headers(sent, "gho_token")
    assert dict(sent.url.params) == {
        "q": "repo:octo/parser parser",
        "per_page": "5",
        "sort": "created",
        "order": "asc",
    }


@respx.mock
async def test_create_issue_and_comment() -> None:
    created = respx.post(f"{API}/repos/acme/widgets/issues").respond(201, json=fixture("issue_created.json"))
    out = await run_action(
        github,
        "create_issue",
        {
            "owner": "acme",
            "repo": "widgets",
            "title": "Found a bug",
            "body": "I'm having a problem with this.",
            "labels": ["bug"],
            "assignees": ["grace"],
        },
        credentials=PAT,
    )
    assert (out["number"], out["html_url"], out["author"]) == (
        43,
        "https://github.com/acme/widgets/issues/43",
        "ada",
    )
    sent = created.calls.last.request
    assert_github_headers(sent)
    assert json.loads(sent.content) == {
        "title": "Found a bug",
        "body": "I'm having a problem with this.",
        "labels": ["bug"],
        "assignees": ["grace"],
    }

    commented = respx.post(f"{API}/repos/acme/widgets/issues/42/comments").respond(
        201, json=fixture("comment_created.json")
    )
    comment = await run_action(
        github,
        "comment_on_issue",
        {"owner": "acme", "repo": "widgets", "issue_number": 42, "body": "Me too"},
        credentials=PAT,
    )
    assert comment == {
        "id": 1,
        "html_url": "https://github.com/acme/widgets/issues/42#issuecomment-1",
        "body": "Me too",
        "author": "ada",
        "created_at": "2024-05-03T11:00:00Z",
        "updated_at": "2024-05-03T11:00:00Z",
    }
    assert json.loads(commented.calls.last.request.content) == {"body": "Me too"}


@respx.mock
async def test_list_repos_of_a_user_and_of_an_org() -> None:
    user_route = respx.get(f"{API}/users/octocat/repos").respond(json=fixture("repos.json"))
    out = await run_action(github, "list_repos", {"owner": "octocat", "sort": "updated"}, credentials=PAT)
    assert [r["full_name"] for r in out] == ["octocat/Hello-World", "octocat/Spoon-Knife"]
    assert out[1]["stars"] == 12000
    assert out[1]["forks"] == 1200
    assert out[1]["open_issues"] == 4
    assert out[1]["owner"] == "octocat"
    assert out[1]["topics"] == ["demo"]
    assert dict(user_route.calls.last.request.url.params) == {"per_page": "100", "sort": "updated"}

    org_route = respx.get(f"{API}/orgs/acme/repos").respond(json=fixture("repos.json"))
    out = await run_action(
        github,
        "list_repos",
        {"owner": "acme", "owner_type": "org", "type": "sources", "limit": 2},
        credentials=PAT,
    )
    assert len(out) == 2
    assert dict(org_route.calls.last.request.url.params) == {"per_page": "2", "type": "sources"}


async def test_list_repos_type_must_fit_the_owner_type() -> None:
    with pytest.raises(StepError, match="applies to organisations"):
        await run_action(github, "list_repos", {"owner": "octocat", "type": "sources"}, credentials=PAT)


@respx.mock
async def test_search_repos() -> None:
    route = respx.get(f"{API}/search/repositories").respond(json=fixture("search_repos.json"))
    out = await run_action(github, "search_repos", {"q": "topic:mashup", "sort": "stars"}, credentials=PAT)
    assert out[0]["full_name"] == "mashers/pipes"
    assert out[0]["language"] == "Python"
    assert dict(route.calls.last.request.url.params) == {
        "q": "topic:mashup",
        "per_page": "30",
        "sort": "stars",
        "order": "desc",
    }


ERROR_TARGETS = [
    ("list_issues", {"owner": "acme", "repo": "widgets"}, "GET", f"{API}/repos/acme/widgets/issues"),
    ("search_repos", {"q": "x"}, "GET", f"{API}/search/repositories"),
    (
        "create_issue",
        {"owner": "acme", "repo": "widgets", "title": "t"},
        "POST",
        f"{API}/repos/acme/widgets/issues",
    ),
    ("new_releases", None, "GET", f"{API}/repos/acme/widgets/releases"),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("target", ERROR_TARGETS, ids=lambda t: t[0])
async def test_error_cases(case: ErrorCase, target: tuple[str, Any, str, str]) -> None:
    name, params, method, url = target
    if name == "new_releases":  # a poll: run it through the same checks by hand
        with respx.mock(assert_all_called=True) as mock:
            mock.request(method, url).mock(
                return_value=httpx.Response(
                    case.status,
                    headers={"Content-Type": "application/json", **case.headers},
                    content=case.content,
                )
            )
            with pytest.raises(case.error) as raised:
                await run_poll(github, name, {"owner": "acme", "repo": "widgets"}, None, credentials=PAT)
        assert raised.value.retry_kind == case.retry_kind
        return
    await check_error_case(case, github, name, params, method, url, credentials=PAT)


@respx.mock
async def test_exhausted_quota_403_is_rate_limited_until_the_reset() -> None:
    respx.get(f"{API}/search/repositories").respond(
        403,
        json={"message": "API rate limit exceeded for user ID 1."},
        headers={
            "x-ratelimit-remaining": "0",
            "x-ratelimit-limit": "5000",
            "x-ratelimit-reset": "4102444800",
        },
    )
    with pytest.raises(RateLimited) as caught:
        await run_action(github, "search_repos", {"q": "x"}, credentials=PAT)
    error = caught.value
    assert error.retry_kind == "http_429"
    assert error.retry_after is not None
    assert error.retry_after > 0  # seconds until x-ratelimit-reset (2100-01-01)
    assert "API rate limit exceeded" in error.message
    assert PAT["token"] not in error.message


@respx.mock
async def test_secondary_rate_limit_403_with_retry_after() -> None:
    respx.get(f"{API}/search/issues").respond(
        403, json={"message": "You have exceeded a secondary rate limit."}, headers={"retry-after": "60"}
    )
    with pytest.raises(RateLimited) as caught:
        await run_action(github, "search_issues", {"q": "x"}, credentials=PAT)
    assert caught.value.retry_after == 60.0


# -- polls ------------------------------------------------------------------------------------------


@respx.mock
async def test_new_issues_baseline_then_new_items_and_cursor() -> None:
    route = respx.get(f"{API}/repos/acme/widgets/issues").respond(json=fixture("issues_page1.json"))
    params = {"owner": "acme", "repo": "widgets", "labels": ["bug"]}
    baseline = await run_poll(github, "new_issues", params, None, credentials=PAT)
    assert [item["number"] for item in baseline.items] == [40, 42]  # oldest first, the PR left out
    assert baseline.keys == ["40", "42"]
    assert baseline.cursor == 42
    assert dict(route.calls.last.request.url.params) == {
        "state": "all",
        "sort": "created",
        "direction": "desc",
        "per_page": "100",
        "labels": "bug",
    }

    newer = [
        {**fixture("issue_created.json"), "number": 45, "title": "Newest"},
        {**fixture("issue_created.json"), "number": 44, "pull_request": {"url": "x"}},
        {**fixture("issue_created.json"), "number": 43},
        *fixture("issues_page1.json"),
    ]
    route.respond(json=newer)
    later = await run_poll(github, "new_issues", params, baseline.cursor, credentials=PAT)
    assert [item["number"] for item in later.items] == [43, 45]
    assert later.keys == ["43", "45"]
    assert later.cursor == 45

    quiet = await run_poll(github, "new_issues", params, later.cursor, credentials=PAT)
    assert (quiet.items, quiet.cursor) == ([], 45)


@respx.mock
async def test_new_issues_on_an_empty_repository_keeps_a_cursor() -> None:
    respx.get(f"{API}/repos/acme/empty/issues").respond(json=[])
    result = await run_poll(github, "new_issues", {"owner": "acme", "repo": "empty"}, None, credentials=PAT)
    assert (result.items, result.cursor) == ([], 0)


@respx.mock
async def test_new_issues_follows_pages_until_the_cursor() -> None:
    respx.get(f"{API}/repos/acme/widgets/issues").respond(
        json=fixture("issues_page1.json"),
        headers={"Link": f'<{API}/repositories/1/issues?page=2>; rel="next"'},
    )
    respx.get(f"{API}/repositories/1/issues?page=2").respond(json=fixture("issues_page2.json"))
    result = await run_poll(github, "new_issues", {"owner": "acme", "repo": "widgets"}, 38, credentials=PAT)
    assert [item["number"] for item in result.items] == [39, 40, 42]
    assert result.cursor == 42


@respx.mock
async def test_new_releases_baseline_then_new() -> None:
    route = respx.get(f"{API}/repos/acme/widgets/releases").respond(json=fixture("releases.json"))
    params = {"owner": "acme", "repo": "widgets"}
    baseline = await run_poll(github, "new_releases", params, None, credentials=PAT)
    assert [r["tag_name"] for r in baseline.items] == ["v1.9.0", "v2.0.0", "v2.1.0-rc1"]  # no draft
    assert baseline.keys == ["1001", "2002", "3003"]
    assert baseline.cursor == "2024-05-02T09:00:00Z"
    first = baseline.items[0]
    assert first["repository"] == "acme/widgets"
    assert first["author"] == "release-bot"
    assert first["html_url"] == "https://github.com/acme/widgets/releases/tag/v1.9.0"
    assert dict(route.calls.last.request.url.params) == {"per_page": "100"}
    assert_github_headers(route.calls.last.request)

    published = {
        **fixture("releases.json")[1],
        "draft": False,
        "published_at": "2024-05-10T09:00:00Z",
    }
    route.respond(json=[published, *fixture("releases.json")])
    later = await run_poll(github, "new_releases", params, baseline.cursor, credentials=PAT)
    assert [(r["id"], r["tag_name"]) for r in later.items] == [(3004, "v2.2.0")]
    assert later.cursor == "2024-05-10T09:00:00Z"

    stable = await run_poll(
        github,
        "new_releases",
        {**params, "include_prereleases": False},
        "2024-03-15T00:00:00Z",
        credentials=PAT,
    )
    assert [r["tag_name"] for r in stable.items] == ["v2.0.0", "v2.2.0"]


@respx.mock
async def test_new_releases_without_any_release() -> None:
    respx.get(f"{API}/repos/acme/widgets/releases").respond(json=[])
    result = await run_poll(
        github, "new_releases", {"owner": "acme", "repo": "widgets"}, None, credentials=PAT
    )
    assert (result.items, result.cursor) == ([], None)


# -- webhook ----------------------------------------------------------------------------------------

SECRET = "hook-secret-0123"


def delivery(
    event: str, body: bytes, *, secret: str = SECRET, content_type: str = "application/json"
) -> WebhookRequest:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return WebhookRequest.build(
        body,
        {
            "Content-Type": content_type,
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "X-Hub-Signature-256": signature,
            "User-Agent": "GitHub-Hookshot/044aadd",
        },
    )


async def test_webhook_delivery_becomes_one_event() -> None:
    body = json.dumps(fixture("webhook_issues_opened.json")).encode()
    items = await run_webhook(github, "events", delivery("issues", body), secret=SECRET)
    assert len(items) == 1
    event = items[0]
    assert {k: event[k] for k in ("event", "delivery", "action", "repository", "sender")} == {
        "event": "issues",
        "delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "action": "opened",
        "repository": "acme/widgets",
        "sender": "ada",
    }
    assert event["payload"]["issue"]["number"] == 44


async def test_webhook_form_encoded_delivery() -> None:
    payload = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "acme/widgets"}})
    body = str(httpx.QueryParams({"payload": payload})).encode()
    request = delivery("push", body, content_type="application/x-www-form-urlencoded")
    items = await run_webhook(github, "events", request, secret=SECRET)
    assert items[0]["event"] == "push"
    assert items[0]["action"] is None
    assert items[0]["payload"]["ref"] == "refs/heads/main"


async def test_webhook_ping_starts_nothing() -> None:
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 123}).encode()
    log: list[str] = []
    assert await run_webhook(github, "events", delivery("ping", body), secret=SECRET, log=log) == []
    assert log == ["INFO ping from GitHub hook 123"]


async def test_webhook_refuses_forged_or_odd_deliveries() -> None:
    body = json.dumps(fixture("webhook_issues_opened.json")).encode()
    with pytest.raises(WebhookSignatureInvalid):
        await run_webhook(github, "events", delivery("issues", body, secret="guessed"), secret=SECRET)
    with pytest.raises(WebhookSignatureInvalid, match="no secret"):
        await run_webhook(github, "events", delivery("issues", body), secret=None)
    tampered = delivery("issues", body)
    tampered = WebhookRequest.build(body.replace(b"opened", b"closed"), tampered.headers)
    with pytest.raises(WebhookSignatureInvalid):
        await run_webhook(github, "events", tampered, secret=SECRET)

    no_event = WebhookRequest.build(body, {**delivery("issues", body).headers, "x-github-event": ""})
    with pytest.raises(WebhookPayloadInvalid, match="X-GitHub-Event"):
        await run_webhook(github, "events", no_event, secret=SECRET)
    with pytest.raises(WebhookPayloadInvalid, match="JSON object"):
        await run_webhook(github, "events", delivery("issues", b"[1, 2]"), secret=SECRET)
    bad_form = delivery("push", b"payload=%7Bnope", content_type="application/x-www-form-urlencoded")
    with pytest.raises(WebhookPayloadInvalid, match="not JSON"):
        await run_webhook(github, "events", bad_form, secret=SECRET)
