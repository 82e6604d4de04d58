"""Secrets in URLs: PathToken and WebhookUrl auth kinds, masking in logs and errors; connector headers;
403 throttling answers."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx
from pydantic import BaseModel, Field

from app.errors import StepError
from app.sdk import (
    AuthFailed,
    BearerToken,
    ConnectionFailed,
    Connector,
    ConnectorDefinitionError,
    Context,
    NoAuth,
    NotFound,
    PathToken,
    RateLimited,
    WebhookUrl,
    raise_for_response,
)
from app.sdk.redaction import mask, mask_error, secret_values
from app.sdk.testing import check_connector, run_action

TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
HOOK = "https://hooks.chat.test/services/T000/B000/XXXXXXXXXXXXXXXX"


class Empty(BaseModel):
    pass


class Message(BaseModel):
    text: str = Field(description="Text")


def bot() -> Connector:
    demo = Connector(
        key="bot",
        version="1.0.0",
        title="Bot",
        description="A bot API with its token in the path.",
        base_url="https://api.bot.test",
        auth=[PathToken(prefix="/bot", label="Bot token")],
        test_request=("GET", "/getMe"),
        headers={"X-Client": "mashpipe"},
    )

    @demo.action()
    async def me(ctx: Context, params: Empty) -> dict[str, object]:
        """The bot."""
        body = await ctx.request_json("GET", "/getMe")
        assert isinstance(body, dict)
        return body

    return demo


def hooks() -> Connector:
    demo = Connector(
        key="chat",
        version="1.0.0",
        title="Chat",
        description="A chat with incoming webhooks.",
        base_url="https://api.chat.test",
        auth=[WebhookUrl(hosts=["hooks.chat.test"])],
    )

    @demo.action()
    async def post(ctx: Context, params: Message) -> dict[str, str]:
        """Post."""
        response = await ctx.http.post(ctx.credentials["webhook_url"], json={"text": params.text})
        raise_for_response(response)
        return {"answer": response.text}

    return demo


@respx.mock
async def test_path_token_goes_in_the_path_and_headers_are_sent() -> None:
    route = respx.get(f"https://api.bot.test/bot{TOKEN}/getMe").respond(json={"ok": True})
    out = await run_action(bot(), "me", {}, credentials={"token": TOKEN})
    assert out == {"ok": True}
    sent = route.calls.last.request
    assert sent.headers["X-Client"] == "mashpipe"
    assert "authorization" not in sent.headers


@respx.mock
async def test_the_raw_request_output_does_not_show_the_token() -> None:
    respx.get(f"https://api.bot.test/bot{TOKEN}/getMe").respond(json={"ok": True})
    out = await run_action(bot(), "request", {"path": "/getMe"}, credentials={"token": TOKEN})
    assert out["url"] == "https://api.bot.test/bot***/getMe"
    assert out["body"] == {"ok": True}


@respx.mock
async def test_path_token_is_masked_in_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    respx.get(f"https://api.bot.test/bot{TOKEN}/getMe").respond(404, json={"description": "Not Found"})
    caplog.set_level(logging.DEBUG)
    with pytest.raises(NotFound) as caught:
        await run_action(bot(), "me", {}, credentials={"token": TOKEN})
    error = caught.value
    assert "https://api.bot.test/bot***/getMe" in error.message
    assert TOKEN not in error.message
    assert TOKEN not in str(error.details)
    assert TOKEN not in str(error)
    assert error.__cause__ is None
    assert "bot***/getMe" in caplog.text  # httpx's INFO line is still there, masked
    assert TOKEN not in caplog.text


@respx.mock
async def test_transport_errors_are_masked_too() -> None:
    respx.get(f"https://api.bot.test/bot{TOKEN}/getMe").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ConnectionFailed) as caught:
        await run_action(bot(), "me", {}, credentials={"token": TOKEN})
    assert TOKEN not in caught.value.message
    assert "bot***" in caught.value.message


async def test_path_token_refuses_characters_that_would_move_the_path() -> None:
    with pytest.raises(StepError, match="cannot appear in a URL path") as caught:
        await run_action(bot(), "me", {}, credentials={"token": "abc/../../admin"})
    assert caught.value.code == "connection_invalid"
    with pytest.raises(ConnectorDefinitionError, match="ASCII path start"):
        PathToken(prefix="bot")
    assert PathToken(prefix="/bot").describe() == {
        "kind": "path_token",
        "label": "Token",
        "fields": [{"name": "token", "label": "Token", "secret": True}],
        "prefix": "/bot",
    }


@respx.mock
async def test_webhook_url_is_posted_to_and_masked(caplog: pytest.LogCaptureFixture) -> None:
    route = respx.post(HOOK).respond(200, text="ok")
    caplog.set_level(logging.INFO)
    out = await run_action(hooks(), "post", {"text": "hi"}, credentials={"webhook_url": HOOK})
    assert out == {"answer": "ok"}
    assert route.calls.last.request.content == b'{"text":"hi"}'
    assert HOOK not in caplog.text
    assert "HTTP Request: POST ***" in caplog.text

    respx.post(HOOK).respond(403, text="invalid_token")
    with pytest.raises(AuthFailed) as caught:
        await run_action(hooks(), "post", {"text": "hi"}, credentials={"webhook_url": HOOK})
    assert HOOK not in caught.value.message
    assert "XXXXXXXX" not in str(caught.value.details)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.chat.test/services/T/B/X",
        "https://evil.test/services/T/B/X",
        "https://user:pw@hooks.chat.test/services/T/B/X",
        "not a url at all",
    ],
)
async def test_webhook_url_must_be_https_on_a_declared_host(url: str) -> None:
    with pytest.raises(StepError, match=r"must be an https URL on hooks\.chat\.test") as caught:
        await run_action(hooks(), "post", {"text": "hi"}, credentials={"webhook_url": url})
    assert caught.value.code == "connection_invalid"
    assert url not in caught.value.message


def test_webhook_url_declaration_and_checks() -> None:
    with pytest.raises(ConnectorDefinitionError, match="non-empty list of host names"):
        WebhookUrl(hosts="hooks.chat.test")
    with pytest.raises(ConnectorDefinitionError, match="non-empty list"):
        WebhookUrl(hosts=[])
    assert WebhookUrl(hosts=["Hooks.Chat.Test"]).describe()["hosts"] == ["hooks.chat.test"]
    # A connector whose only credential is a webhook URL needs no test_request...
    assert check_connector(hooks()) == []
    # ...but one accepting a token does.
    both = Connector(
        key="both",
        version="1.0.0",
        title="Both",
        description="Both.",
        auth=[BearerToken(), WebhookUrl(hosts=["h.test"])],
    )
    assert check_connector(both) == ["both: declares auth but no test_request to verify a connection"]


def test_connector_headers_are_checked() -> None:
    with pytest.raises(ConnectorDefinitionError, match="headers must map header names to string values"):
        Connector(key="x", version="1.0.0", title="X", description="X.", headers={"X-N": 1})  # type: ignore[dict-item]
    assert Connector(key="x", version="1.0.0", title="X", description="X.").headers == {}


def test_secret_values_and_masking() -> None:
    credentials = {"kind": "bearer", "token": "tok-12345", "instance": "social.test", "pin": "12"}
    assert secret_values(credentials, public=["instance"]) == ("tok-12345",)
    assert secret_values(None) == ()
    assert secret_values({"a": "abcd", "b": "abcdef"}) == ("abcdef", "abcd")
    assert mask("x tok-12345 y", ["tok-12345"]) == "x *** y"
    error = StepError("failed at tok-12345", details={"url": ["u/tok-12345"], "n": 1})
    assert mask_error(error, ["tok-12345"]) is True
    assert error.message == "failed at ***"
    assert error.details == {"url": ["u/***"], "n": 1}
    assert str(error) == "failed at ***"
    assert mask_error(error, ["tok-12345"]) is False
    assert mask_error(error, []) is False


async def test_base_url_placeholders_are_not_masked() -> None:
    demo = Connector(
        key="inst",
        version="1.0.0",
        title="Inst",
        description="Per instance.",
        base_url="https://{instance}",
        auth=[NoAuth()],
    )

    @demo.action()
    async def ping(ctx: Context, params: Empty) -> dict[str, object]:
        """Ping."""
        return dict(await ctx.request_json("GET", "/ping"))

    with respx.mock:
        respx.get("https://social.test/ping").respond(500)
        with pytest.raises(StepError) as caught:
            await run_action(demo, "ping", {}, credentials={"kind": "none", "instance": "social.test"})
    assert "https://social.test/ping" in caught.value.message


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"Retry-After": "60"}, RateLimited),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "4102444800"}, RateLimited),
        ({"X-RateLimit-Remaining": "12"}, AuthFailed),
    ],
)
def test_403_throttling_is_rate_limited(headers: dict[str, str], error: type[StepError]) -> None:
    request = httpx.Request("GET", "https://api.github.test/search/issues")
    response = httpx.Response(403, headers=headers, json={"message": "limit"}, request=request)
    with pytest.raises(error) as caught:
        raise_for_response(response)
    if error is RateLimited:
        assert caught.value.retry_kind == "http_429"
        assert caught.value.retry_after is not None
        assert caught.value.retry_after > 0
