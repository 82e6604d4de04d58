"""Webhook operations: declaration, signature checks, request decoding, invocation and metadata."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from pydantic import BaseModel

from app.registry import Registry
from app.sdk import (
    Connector,
    ConnectorDefinitionError,
    Context,
    HmacSha256,
    InvalidResponse,
    Poll,
    WebhookPayloadInvalid,
    WebhookRequest,
    WebhookSignatureInvalid,
    verify_hmac_sha256,
)
from app.sdk.testing import check_connector, run_webhook
from app.sdk.webhooks import check_signature

SECRET = "It's a Secret to Everybody"
BODY = b"Hello, World!"
# The example of GitHub's documentation "Validating webhook deliveries"
GITHUB_EXAMPLE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


class Event(BaseModel):
    name: str
    action: str | None = None


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def make() -> Connector:
    demo = Connector(
        key="demo", version="1.0.0", title="Demo", description="Demo.", base_url="https://api.demo.test"
    )

    @demo.webhook(title="Events", verify=HmacSha256(header="X-Demo-Signature"))
    async def events(ctx: Context, request: WebhookRequest) -> list[Event]:
        """One item per call; pings are ignored."""
        name = request.header("x-demo-event") or "unknown"
        if name == "ping":
            return []
        ctx.log.info("event %s", name)
        return [Event(name=name, action=(request.body or {}).get("action"))]

    @demo.webhook()
    async def open_hook(ctx: Context, request: WebhookRequest) -> list[dict[str, Any]]:
        """Accepts every call, unsigned."""
        return [{"body": request.body}]

    return demo


def test_verify_hmac_sha256_matches_the_documented_example() -> None:
    assert verify_hmac_sha256(SECRET, BODY, GITHUB_EXAMPLE)
    assert verify_hmac_sha256(SECRET.encode(), BODY, GITHUB_EXAMPLE.upper().replace("SHA256=", "sha256="))
    assert verify_hmac_sha256(SECRET, BODY, "  " + GITHUB_EXAMPLE + " ")


@pytest.mark.parametrize(
    ("secret", "body", "signature", "prefix"),
    [
        ("wrong secret", BODY, GITHUB_EXAMPLE, "sha256="),
        (SECRET, b"Hello, World?", GITHUB_EXAMPLE, "sha256="),
        (SECRET, BODY, None, "sha256="),
        (SECRET, BODY, GITHUB_EXAMPLE.removeprefix("sha256="), "sha256="),
        (SECRET, BODY, "sha1=" + GITHUB_EXAMPLE.removeprefix("sha256="), "sha256="),
        (SECRET, BODY, "sha256=", "sha256="),
        (SECRET, BODY, "sha256=é" + GITHUB_EXAMPLE[8:], "sha256="),
        ("", BODY, GITHUB_EXAMPLE, "sha256="),
    ],
)
def test_verify_hmac_sha256_refuses(secret: str, body: bytes, signature: str | None, prefix: str) -> None:
    assert not verify_hmac_sha256(secret, body, signature, prefix)


def test_verify_hmac_sha256_without_prefix() -> None:
    bare = GITHUB_EXAMPLE.removeprefix("sha256=")
    assert verify_hmac_sha256(SECRET, BODY, bare, prefix="")


def test_request_decoding() -> None:
    as_json = WebhookRequest.build(b'{"a": 1}', {"Content-Type": "application/json; charset=utf-8"})
    assert as_json.body == {"a": 1}
    assert as_json.method == "POST"
    assert as_json.header("content-type") == "application/json; charset=utf-8"
    assert as_json.header("missing", "x") == "x"
    form = WebhookRequest.build(
        b"payload=%7B%22a%22%3A1%7D&empty=", {"content-type": "application/x-www-form-urlencoded"}
    )
    assert form.body == {"payload": '{"a":1}', "empty": ""}
    text = WebhookRequest.build(b"hello", {"content-type": "text/plain"}, query={"q": "1"}, method="put")
    assert (text.body, text.query, text.method) == ("hello", {"q": "1"}, "PUT")
    assert WebhookRequest.build(b"  ").body is None
    with pytest.raises(WebhookPayloadInvalid, match="not valid JSON") as caught:
        WebhookRequest.build(b"{oops", {"content-type": "application/json"})
    assert caught.value.status == 400
    with pytest.raises(TypeError):
        WebhookRequest.build("text")  # type: ignore[arg-type]


def test_check_signature() -> None:
    verifier = HmacSha256(header="X-Sig")
    good = WebhookRequest.build(BODY, {"X-Sig": GITHUB_EXAMPLE})
    check_signature(verifier, good, SECRET)
    check_signature(None, good, None)  # no verifier: open
    with pytest.raises(WebhookSignatureInvalid, match="no secret is configured") as caught:
        check_signature(verifier, good, None)
    assert caught.value.status == 401
    with pytest.raises(WebhookSignatureInvalid, match="missing or wrong"):
        check_signature(verifier, WebhookRequest.build(BODY), SECRET)

    def explode(request: WebhookRequest, secret: str) -> bool:
        raise ValueError("bad header")

    demo = Connector(key="demo", version="1.0.0", title="Demo", description="Demo.")

    @demo.webhook(verify=explode)
    async def hook(ctx: Context, request: WebhookRequest) -> list[int]:
        """Doc."""
        return [1]

    op = demo.operation("hook")
    assert op is not None
    with pytest.raises(WebhookSignatureInvalid):
        check_signature(op.verify, good, SECRET)
    assert op.describe()["verify"] == {"kind": "custom"}


async def test_run_webhook_checks_the_signature_first() -> None:
    demo = make()
    body = json.dumps({"action": "opened"}).encode()
    headers = {"Content-Type": "application/json", "X-Demo-Event": "issues", "X-Demo-Signature": sign(body)}
    log: list[str] = []
    items = await run_webhook(demo, "events", WebhookRequest.build(body, headers), secret=SECRET, log=log)
    assert items == [{"name": "issues", "action": "opened"}]
    assert log == ["INFO event issues"]

    ping = {**headers, "X-Demo-Event": "ping"}
    assert await run_webhook(demo, "events", WebhookRequest.build(body, ping), secret=SECRET) == []

    forged = {**headers, "X-Demo-Signature": sign(body, "guess")}
    log.clear()
    with pytest.raises(WebhookSignatureInvalid, match=r"demo\.events: the call's signature is missing"):
        await run_webhook(demo, "events", WebhookRequest.build(body, forged), secret=SECRET, log=log)
    assert log == []  # refused before the operation ran

    plain = WebhookRequest.build(b"x", {"content-type": "text/plain"})
    unsigned = await run_webhook(demo, "open_hook", plain)
    assert unsigned == [{"body": "x"}]


async def test_a_failing_webhook_is_a_step_error() -> None:
    demo = Connector(key="demo", version="1.0.0", title="Demo", description="Demo.")

    @demo.webhook()
    async def broken(ctx: Context, request: WebhookRequest) -> list[Event]:
        """Doc."""
        return [Event.model_validate(request.body)]

    request = WebhookRequest.build(b'{"nope": 1}', {"content-type": "application/json"})
    with pytest.raises(InvalidResponse, match="unexpected shape"):
        await run_webhook(demo, "broken", request)


async def test_a_webhook_may_refuse_a_call_itself() -> None:
    demo = Connector(key="demo", version="1.0.0", title="Demo", description="Demo.")

    @demo.webhook()
    async def picky(ctx: Context, request: WebhookRequest) -> list[Event]:
        """Doc."""
        if not isinstance(request.body, dict):
            raise WebhookPayloadInvalid("expected a JSON object")
        return []

    with pytest.raises(WebhookPayloadInvalid, match="expected a JSON object") as caught:
        await run_webhook(demo, "picky", WebhookRequest.build(b"[1]", {"content-type": "application/json"}))
    assert caught.value.status == 400


def test_webhook_metadata() -> None:
    demo = make()
    assert [op.name for op in demo.webhooks()] == ["events", "open_hook"]
    assert [op.name for op in demo.actions()] == ["request"]
    assert demo.polls() == []
    described = demo.describe()
    hook = described["webhooks"][0]
    assert hook["kind"] == "webhook"
    assert hook["uses"] == "demo.events"
    assert hook["verify"] == {"kind": "hmac_sha256", "header": "X-Demo-Signature", "prefix": "sha256="}
    assert hook["input_schema"]["properties"] == {}
    assert hook["output_schema"]["type"] == "array"
    assert described["webhooks"][1]["verify"] is None
    assert check_connector(demo) == []

    registry = Registry.from_connectors([demo])
    assert registry.webhook_names("demo") == ["events", "open_hook"]
    assert registry.webhook_names("nope") == []
    assert registry.summary()[0]["webhooks"] == ["events", "open_hook"]
    assert registry.describe("demo")["webhooks"][0]["name"] == "events"
    assert registry.operation_names("demo") == ["request"]  # a webhook is not a step
    assert registry.input_model("demo.events") is None


def test_webhook_declaration_errors() -> None:
    demo = Connector(key="demo", version="1.0.0", title="Demo", description="Demo.")
    with pytest.raises(ConnectorDefinitionError, match="the signature must be"):

        @demo.webhook()
        async def three(ctx: Context, request: WebhookRequest, extra: int) -> list[int]:
            """Doc."""
            return []

    with pytest.raises(ConnectorDefinitionError, match="must be annotated `WebhookRequest`"):

        @demo.webhook()
        async def wrong(ctx: Context, request: Event) -> list[int]:
            """Doc."""
            return []

    with pytest.raises(ConnectorDefinitionError, match=r"a webhook must return list\[Item\]"):

        @demo.webhook()
        async def single(ctx: Context, request: WebhookRequest) -> Event:
            """Doc."""
            return Event(name="x")

    with pytest.raises(ConnectorDefinitionError, match=r"a webhook must return list\[Item\]"):

        @demo.webhook()
        async def polled(ctx: Context, request: WebhookRequest) -> Poll[Event]:
            """Doc."""
            return Poll(items=[])

    with pytest.raises(ConnectorDefinitionError, match="verify must be a WebhookVerifier"):
        demo.webhook(verify="sha256")
    with pytest.raises(ConnectorDefinitionError, match="needs the name of the signature header"):
        HmacSha256(header=" ")
    with pytest.raises(ConnectorDefinitionError, match="a docstring is required"):

        @demo.webhook()
        async def undocumented(ctx: Context, request: WebhookRequest) -> list[int]:
            return []


def test_check_connector_flags_a_webhook_not_returning_a_list() -> None:
    demo = make()
    op = demo.operation("events")
    assert op is not None
    op.output_schema = {"type": "object"}
    assert check_connector(demo) == ["demo.events: a webhook must return a list of items"]
