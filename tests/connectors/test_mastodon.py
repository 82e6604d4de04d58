"""The ``mastodon`` connector: per-instance base URL, Idempotency-Key, timelines, new statuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import respx

from app.errors import StepError
from app.sdk import InvalidResponse
from app.sdk.testing import check_connector, run_action, run_poll
from connectors.mastodon import connector as mastodon
from connectors.mastodon import html_to_text
from tests.connectors.error_cases import ERROR_CASES, ErrorCase, check_error_case

FIXTURES = Path(__file__).parent / "fixtures" / "mastodon"
INSTANCE = "social.example"
API = f"https://{INSTANCE}/api/v1"
TOKEN = {"kind": "bearer", "token": "ZA-Yj3aBD8U8Cm7lKUp-lm9O9BmDgdhHzDeqsY8tlL0", "instance": INSTANCE}
ANON = {"kind": "none", "instance": INSTANCE}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_standard_checks() -> None:
    assert check_connector(mastodon) == []
    assert mastodon.base_url == "https://{instance}"
    assert mastodon.auth_kinds() == ["bearer", "none"]
    fields = mastodon.describe()["auth"][0]["fields"]
    assert {"name": "instance", "label": "Instance host, e.g. mastodon.social", "secret": False} in fields
    assert [op.name for op in mastodon.actions()] == [
        "post_status",
        "home_timeline",
        "public_timeline",
        "hashtag_timeline",
        "request",
    ]
    assert [op.name for op in mastodon.polls()] == ["new_statuses"]


def test_html_to_text() -> None:
    html = (
        '<p>Shipping <a href="x">#<span>python</span></a> tips &amp; tricks<br />next line</p><p>Part two</p>'
    )
    assert html_to_text(html) == "Shipping #python tips & tricks\nnext line\n\nPart two"
    assert html_to_text("") == ""


@respx.mock
async def test_post_status_sends_an_idempotency_key() -> None:
    route = respx.post(f"{API}/statuses").respond(json=fixture("status_created.json"))
    params = {"status": "Release 2.0 is out!", "visibility": "unlisted", "language": "en"}
    out = await run_action(mastodon, "post_status", params, credentials=TOKEN)
    assert out["id"] == "113500000000000010"
    assert out["text"] == "Release 2.0 is out!"
    assert out["visibility"] == "unlisted"
    assert out["account"]["acct"] == "ada"
    sent = route.calls.last.request
    assert sent.headers["Authorization"] == f"Bearer {TOKEN['token']}"
    assert json.loads(sent.content) == {
        "status": "Release 2.0 is out!",
        "visibility": "unlisted",
        "language": "en",
    }
    key = sent.headers["Idempotency-Key"]
    assert key.startswith("mashpipe-")

    await run_action(mastodon, "post_status", params, credentials=TOKEN)
    assert route.calls.last.request.headers["Idempotency-Key"] == key  # a retry: the same key
    await run_action(mastodon, "post_status", {**params, "status": "Another"}, credentials=TOKEN)
    assert route.calls.last.request.headers["Idempotency-Key"] != key
    await run_action(
        mastodon,
        "post_status",
        {**params, "idempotency_key": "release-2.0", "sensitive": True},
        credentials=TOKEN,
    )
    last = route.calls.last.request
    assert last.headers["Idempotency-Key"] == "release-2.0"
    assert json.loads(last.content)["sensitive"] is True


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_post_status_error_cases(case: ErrorCase) -> None:
    await check_error_case(
        case, mastodon, "post_status", {"status": "hi"}, "POST", f"{API}/statuses", credentials=TOKEN
    )


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
async def test_timeline_error_cases(case: ErrorCase) -> None:
    await check_error_case(
        case, mastodon, "public_timeline", {"limit": 5}, "GET", f"{API}/timelines/public", credentials=ANON
    )


@respx.mock
async def test_validation_error_names_mastodon_reason() -> None:
    respx.post(f"{API}/statuses").respond(
        422, json={"error": "Validation failed: Text character limit of 500 exceeded"}
    )
    with pytest.raises(StepError, match="character limit of 500 exceeded"):
        await run_action(mastodon, "post_status", {"status": "x" * 600}, credentials=TOKEN)


@respx.mock
async def test_home_timeline_follows_link_pages() -> None:
    next_url = f"{API}/timelines/home?limit=40&max_id=113500000000000001"
    respx.get(next_url).respond(json=fixture("timeline_page2.json"))  # first: routes match in order
    first = respx.get(f"{API}/timelines/home").respond(
        json=fixture("timeline_page1.json"),
        headers={
            "Link": f'<{next_url}>; rel="next", <{API}/timelines/home?min_id=113500000000000003>; rel="prev"'
        },
    )
    out = await run_action(mastodon, "home_timeline", {}, credentials=TOKEN)
    assert [s["id"] for s in out] == [
        "113500000000000003",
        "113500000000000002",
        "113500000000000001",
        "113499999999999999",
    ]
    top = out[0]
    assert top["text"] == "Shipping #python 3.13 tips & tricks\nThread below\n\nPart two"
    assert top["tags"] == ["python"]
    assert top["media"] == ["https://files.social.example/a.png"]
    assert top["url"] == "https://social.example/@ada/113500000000000003"
    assert out[1]["account"]["acct"] == "bob@other.example"
    assert out[1]["language"] is None
    assert out[2]["reblog_of"] == "https://social.example/@bob/113400000000000009"
    assert dict(first.calls.last.request.url.params) == {"limit": "40"}


@respx.mock
async def test_public_and_hashtag_timelines_without_a_token() -> None:
    public = respx.get(f"{API}/timelines/public").respond(json=fixture("timeline_page2.json"))
    out = await run_action(
        mastodon, "public_timeline", {"local": True, "only_media": True, "limit": 5}, credentials=ANON
    )
    assert [s["id"] for s in out] == ["113499999999999999"]
    sent = public.calls.last.request
    assert "authorization" not in sent.headers
    assert dict(sent.url.params) == {"limit": "5", "local": "true", "only_media": "true"}

    tagged = respx.get(f"{API}/timelines/tag/python").respond(json=fixture("timeline_page1.json"))
    out = await run_action(
        mastodon,
        "hashtag_timeline",
        {"hashtag": "#python", "any": ["#django", "flask"], "limit": 2, "max_id": "113500000000000009"},
        credentials=ANON,
    )
    assert len(out) == 2
    assert tagged.calls.last.request.url.params.multi_items() == [
        ("limit", "2"),
        ("max_id", "113500000000000009"),
        ("any[]", "django"),
        ("any[]", "flask"),
    ]


@pytest.mark.parametrize(
    ("operation", "params", "credentials", "problem"),
    [
        ("hashtag_timeline", {"hashtag": "py thon"}, ANON, "hashtag"),
        ("hashtag_timeline", {"hashtag": "../admin"}, ANON, "hashtag"),
        ("public_timeline", {"max_id": "abc"}, ANON, "max_id"),
        ("public_timeline", {"limit": 401}, ANON, "limit"),
        ("post_status", {"status": ""}, TOKEN, "status"),
        ("post_status", {"status": "x", "visibility": "everyone"}, TOKEN, "visibility"),
    ],
)
async def test_params_are_checked(
    operation: str, params: dict[str, Any], credentials: dict[str, str], problem: str
) -> None:
    with pytest.raises(StepError) as caught:
        await run_action(mastodon, operation, params, credentials=credentials)
    assert caught.value.code == "invalid_params"
    assert problem in caught.value.message


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        (None, "must give `instance`"),
        ({"kind": "bearer", "token": "t0k3n"}, "lacks instance"),
        ({"kind": "bearer", "token": "t0k3n", "instance": "evil.example/steal?x="}, "must give `instance`"),
    ],
)
async def test_the_connection_must_name_a_host(credentials: dict[str, str] | None, message: str) -> None:
    with pytest.raises(StepError, match=message):
        await run_action(mastodon, "public_timeline", {}, credentials=credentials)


# -- new_statuses poll ----------------------------------------------------------------------------------


@respx.mock
async def test_new_statuses_baseline_then_forward_pages() -> None:
    route = respx.get(f"{API}/timelines/home").respond(json=fixture("timeline_page1.json"))
    baseline = await run_poll(mastodon, "new_statuses", {}, None, credentials=TOKEN)
    assert baseline.keys == ["113500000000000001", "113500000000000002", "113500000000000003"]
    assert baseline.cursor == "113500000000000003"
    assert dict(route.calls.last.request.url.params) == {"limit": "20"}

    def status(status_id: str) -> dict[str, Any]:
        return {**fixture("timeline_page2.json")[0], "id": status_id}

    full_page = [status(str(113500000000000100 + n)) for n in range(40, 0, -1)]
    route.side_effect = [
        respx.MockResponse(json=full_page),
        respx.MockResponse(json=[status("113500000000000141")]),
    ]
    later = await run_poll(mastodon, "new_statuses", {}, baseline.cursor, credentials=TOKEN)
    assert len(later.items) == 41
    assert later.keys[0] == "113500000000000101"
    assert later.keys[-1] == "113500000000000141"
    assert later.cursor == "113500000000000141"
    first_call, second_call = route.calls[-2:]
    assert dict(first_call.request.url.params) == {"min_id": "113500000000000003", "limit": "40"}
    assert dict(second_call.request.url.params) == {"min_id": "113500000000000140", "limit": "40"}

    route.side_effect = None
    route.respond(json=[])
    quiet = await run_poll(mastodon, "new_statuses", {}, later.cursor, credentials=TOKEN)
    assert (quiet.items, quiet.cursor) == ([], "113500000000000141")


@respx.mock
async def test_new_statuses_on_hashtag_and_local_timelines() -> None:
    tag = respx.get(f"{API}/timelines/tag/rust").respond(json=[])
    empty = await run_poll(
        mastodon,
        "new_statuses",
        {"timeline": "hashtag", "hashtag": "#rust", "only_media": True},
        None,
        credentials=ANON,
    )
    assert (empty.items, empty.cursor) == ([], "0")
    assert dict(tag.calls.last.request.url.params) == {"only_media": "true", "limit": "20"}

    local = respx.get(f"{API}/timelines/public").respond(json=fixture("timeline_page2.json"))
    result = await run_poll(
        mastodon, "new_statuses", {"timeline": "local"}, "113499999999999990", credentials=ANON
    )
    assert result.keys == ["113499999999999999"]
    assert dict(local.calls.last.request.url.params) == {
        "local": "true",
        "min_id": "113499999999999990",
        "limit": "40",
    }


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"timeline": "hashtag"}, "needs `hashtag`"),
        ({"timeline": "home", "hashtag": "x"}, "only applies to timeline hashtag"),
    ],
)
async def test_new_statuses_params(params: dict[str, Any], problem: str) -> None:
    with pytest.raises(StepError, match=problem):
        await run_poll(mastodon, "new_statuses", params, None, credentials=TOKEN)


@respx.mock
async def test_new_statuses_needs_a_list() -> None:
    respx.get(f"{API}/timelines/home").respond(json={"error": "odd"})
    with pytest.raises(InvalidResponse, match="not a list"):
        await run_poll(mastodon, "new_statuses", {}, None, credentials=TOKEN)
