"""Slack (https://api.slack.com): post messages as a bot, or through an incoming webhook.

Two kinds of connection:

* a bot token (``{"kind": "bearer", "token": "xoxb-..."}``, scope ``chat:write``) for
  ``post_message`` (``chat.postMessage``). Slack answers HTTP 200 with ``{"ok": false, "error": ...}``
  when a call fails: ``not_authed``, ``invalid_auth`` and other token problems fail the step as
  ``auth_failed``, ``ratelimited`` as ``rate_limited`` (retryable), ``channel_not_found`` as
  ``not_found``, Slack's own outages as retryable upstream errors, anything else as an
  ``upstream_error`` naming Slack's error code;
* an incoming webhook URL (``{"kind": "webhook_url", "webhook_url": "https://hooks.slack.com/services/..."}``)
  for ``send_webhook_message``. The URL is a secret: it is masked in logs and error messages.

Slack allows about one message per second per channel (short bursts are tolerated); a 429 answer
carries ``Retry-After``, which the step's retry honours. No connector-wide limit is declared, since
Slack's limit is per channel.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.sdk import (
    AuthFailed,
    BearerToken,
    Connector,
    Context,
    InvalidResponse,
    NotFound,
    RateLimited,
    StepError,
    UpstreamError,
    WebhookUrl,
    decode_json,
    parse_retry_after,
    raise_for_response,
)

connector = Connector(
    key="slack",
    version="1.0.0",
    title="Slack",
    description="Post messages to Slack channels, as a bot (chat.postMessage) or by incoming webhook.",
    base_url="https://slack.com/api",
    auth=[
        BearerToken(label="Bot token (xoxb-...)"),
        WebhookUrl(hosts=["hooks.slack.com"], label="Incoming webhook URL (https://hooks.slack.com/...)"),
    ],
    test_request=("POST", "/auth.test"),
    docs_url="https://api.slack.com/methods/chat.postMessage",
)

MAX_TEXT = 40000  # Slack truncates longer messages
MAX_BLOCKS = 50
WEBHOOK_PATHS = ("/services/", "/workflows/", "/triggers/")

AUTH_ERRORS = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
        "org_login_required",
        "ekm_access_denied",
        "team_access_not_granted",
    }
)
RATE_ERRORS = frozenset({"ratelimited", "rate_limited"})
NOT_FOUND_ERRORS = frozenset({"channel_not_found", "thread_not_found", "message_not_found"})
RETRYABLE_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
HINTS = {
    "not_in_channel": "invite the bot to the channel first (/invite @bot)",
    "channel_not_found": "use the channel ID (C0123...) or a channel the bot can see",
    "is_archived": "the channel is archived",
    "msg_too_long": f"the text exceeds {MAX_TEXT} characters",
    "no_text": "give `text` or `blocks`",
    "invalid_blocks": "the blocks do not follow Block Kit",
    "missing_scope": "the token lacks the chat:write scope",
}


class MessageContent(BaseModel):
    """What a message says: text, Block Kit blocks, or both (the text is then the notification fallback)."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(
        default=None, max_length=MAX_TEXT, description="Message text (mrkdwn), or the fallback of `blocks`"
    )
    blocks: list[dict[str, Any]] | None = Field(
        default=None, max_length=MAX_BLOCKS, description="Block Kit blocks (https://api.slack.com/block-kit)"
    )
    mrkdwn: bool = Field(default=True, description="Format the text as Slack mrkdwn")
    unfurl_links: bool = Field(default=False, description="Show previews of links")
    unfurl_media: bool = Field(default=True, description="Show previews of media")

    @model_validator(mode="after")
    def _says_something(self) -> MessageContent:
        if not (self.text and self.text.strip()) and not self.blocks:
            raise ValueError("give `text` or `blocks`")
        return self

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "mrkdwn": self.mrkdwn,
            "unfurl_links": self.unfurl_links,
            "unfurl_media": self.unfurl_media,
        }
        if self.text is not None:
            body["text"] = self.text
        if self.blocks:
            body["blocks"] = self.blocks
        return body


class PostMessageParams(MessageContent):
    """A message posted by the bot."""

    channel: str = Field(
        min_length=1, max_length=80, description="Channel ID (C0123ABCD), or a name such as #general"
    )
    thread_ts: str | None = Field(
        default=None, pattern=r"^\d+\.\d+$", description="Reply in this message's thread (its `ts`)"
    )
    reply_broadcast: bool = Field(
        default=False, description="With thread_ts: show the reply in the channel too"
    )
    username: str | None = Field(
        default=None, max_length=80, description="Bot name to show (needs chat:write.customize)"
    )
    icon_emoji: str | None = Field(default=None, description="Emoji as avatar, e.g. :robot_face:")
    icon_url: str | None = Field(default=None, description="Image URL as avatar")


class PostedMessage(BaseModel):
    """The message Slack stored."""

    model_config = ConfigDict(extra="ignore")

    channel: str = Field(description="Channel ID")
    ts: str = Field(description="The message's timestamp, its ID in the channel")
    text: str | None = None
    thread_ts: str | None = None


class WebhookMessageParams(MessageContent):
    """A message sent through the connection's incoming webhook (its channel is fixed by the webhook)."""


class WebhookResult(BaseModel):
    """Slack accepted the message."""

    ok: bool = Field(description="Always true: a refusal fails the step")


def slack_error(body: dict[str, Any], response: httpx.Response, method: str) -> StepError:
    """The typed error for a Slack Web API answer ``{"ok": false, "error": ...}``."""
    code = str(body.get("error") or "unknown_error")
    hint = HINTS.get(code)
    message = f"Slack {method} failed: {code}" + (f" ({hint})" if hint else "")
    details: dict[str, Any] = {"error": code, "method": method}
    metadata = body.get("response_metadata")
    if isinstance(metadata, dict) and metadata.get("messages"):
        details["messages"] = metadata["messages"]
    if code in AUTH_ERRORS:
        return AuthFailed(message, status_code=response.status_code, details=details)
    status = response.status_code
    if code in RATE_ERRORS:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return RateLimited(message, status_code=status, details=details, retry_after=retry_after)
    if code in NOT_FOUND_ERRORS:
        return NotFound(message, status_code=status, details=details)
    if code in RETRYABLE_ERRORS:
        return UpstreamError(message, status_code=status, details=details, retry_kind="http_5xx")
    return UpstreamError(message, status_code=status, details=details)


async def call_method(ctx: Context, method: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST a Web API method with a JSON body; the ``ok: true`` answer, else the typed error."""
    if not ctx.credentials.get("token"):
        raise StepError(
            f"slack.{ctx.operation} posts as a bot: the connection must be a bot token (kind bearer); "
            "an incoming webhook connection works with slack.send_webhook_message",
            code="connection_invalid",
        )
    response = await ctx.http.post(
        f"/{method}", json=payload, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    raise_for_response(response)
    body = decode_json(response)
    if not isinstance(body, dict) or "ok" not in body:
        raise InvalidResponse(f"Slack {method} answered without an `ok` field")
    if body["ok"] is not True:
        raise slack_error(body, response, method)
    if body.get("warning"):
        ctx.log.warning("Slack %s warning: %s", method, body["warning"])
    return body


@connector.action(title="Post message")
async def post_message(ctx: Context, params: PostMessageParams) -> PostedMessage:
    """Post a message to a channel as the bot (``chat.postMessage``); returns the channel and the message ts.

    Needs a bot token connection with the ``chat:write`` scope; the bot must be in the channel.
    """
    payload = params.payload()
    payload["channel"] = params.channel
    for name in ("thread_ts", "username", "icon_emoji", "icon_url"):
        value = getattr(params, name)
        if value is not None:
            payload[name] = value
    if params.thread_ts is not None and params.reply_broadcast:
        payload["reply_broadcast"] = True
    body = await call_method(ctx, "chat.postMessage", payload)
    found = body.get("message")
    message: dict[str, Any] = found if isinstance(found, dict) else {}
    return PostedMessage.model_validate(
        {
            "channel": body.get("channel"),
            "ts": body.get("ts"),
            "text": message.get("text"),
            "thread_ts": message.get("thread_ts"),
        }
    )


def _webhook_url(ctx: Context) -> str:
    url = ctx.credentials.get("webhook_url")
    if not isinstance(url, str) or not url:
        raise StepError(
            "slack.send_webhook_message needs an incoming webhook connection (kind webhook_url); "
            "a bot token works with slack.post_message",
            code="connection_invalid",
        )
    if not httpx.URL(url).path.startswith(WEBHOOK_PATHS):
        raise StepError(
            "the connection's webhook_url is not a Slack incoming webhook (https://hooks.slack.com/services/...)",
            code="connection_invalid",
        )
    return url


@connector.action(title="Send webhook message")
async def send_webhook_message(ctx: Context, params: WebhookMessageParams) -> WebhookResult:
    """Send a message through the connection's incoming webhook (its channel is chosen in Slack).

    Slack answers a plain ``ok``; a refusal (``invalid_payload``, ``no_service``, ``channel_is_archived``...)
    fails the step with Slack's reason. The webhook URL never appears in logs or errors.
    """
    response = await ctx.http.post(_webhook_url(ctx), json=params.payload())
    raise_for_response(response)
    return WebhookResult(ok=True)
