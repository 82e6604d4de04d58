"""Discord (https://discord.com/developers/docs/resources/webhook): post messages through a channel webhook.

The connection holds the webhook URL (``{"kind": "webhook_url", "webhook_url":
"https://discord.com/api/webhooks/<id>/<token>"}``, from the channel's Integrations settings). The
URL carries its token: it is masked in logs and error messages.

``send_message`` executes the webhook with ``?wait=true`` by default, so Discord confirms the message
and returns it (with ``wait: false`` Discord answers 204 and nothing is returned). Mentions in the
content are inert unless ``allowed_mentions`` allows them, so data flowing into a message can never
ping ``@everyone``. A 429 answer waits ``Retry-After`` (or the body's ``retry_after``) before a retry.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.sdk import (
    Connector,
    Context,
    RateLimit,
    RateLimited,
    StepError,
    WebhookUrl,
    decode_json,
    parse_retry_after,
    raise_for_response,
)

connector = Connector(
    key="discord",
    version="1.0.0",
    title="Discord",
    description="Post messages (text and embeds) to a Discord channel through its webhook.",
    base_url="https://discord.com/api/v10",
    auth=[
        WebhookUrl(
            hosts=["discord.com", "discordapp.com", "canary.discord.com", "ptb.discord.com"],
            label="Channel webhook URL (https://discord.com/api/webhooks/...)",
        )
    ],
    rate_limit=RateLimit(50, per="second"),  # Discord's global limit; webhooks have tighter, dynamic ones
    docs_url="https://discord.com/developers/docs/resources/webhook#execute-webhook",
)

WEBHOOK_PATH_RE = re.compile(r"^/api(?:/v\d+)?/webhooks/\d+/[A-Za-z0-9_-]+/?$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbedFooter(Strict):
    text: str = Field(max_length=2048, description="Footer text")
    icon_url: str | None = Field(default=None, description="Footer icon URL")


class EmbedAuthor(Strict):
    name: str = Field(max_length=256, description="Author name")
    url: str | None = Field(default=None, description="Link of the author name")
    icon_url: str | None = Field(default=None, description="Author icon URL")


class EmbedField(Strict):
    name: str = Field(min_length=1, max_length=256, description="Field name")
    value: str = Field(min_length=1, max_length=1024, description="Field value")
    inline: bool = Field(default=False, description="Show next to other inline fields")


class EmbedMedia(Strict):
    url: str = Field(description="Image URL (http(s) or attachment://)")


class Embed(Strict):
    """A rich embed (https://discord.com/developers/docs/resources/message#embed-object)."""

    title: str | None = Field(default=None, max_length=256, description="Title")
    description: str | None = Field(default=None, max_length=4096, description="Text (Markdown)")
    url: str | None = Field(default=None, description="Link of the title")
    color: int | None = Field(default=None, ge=0, le=0xFFFFFF, description="Colour as an integer (0x5865F2)")
    timestamp: datetime | None = Field(default=None, description="Time shown in the footer")
    footer: EmbedFooter | None = Field(default=None, description="Footer")
    author: EmbedAuthor | None = Field(default=None, description="Author line")
    fields: list[EmbedField] = Field(default_factory=list, max_length=25, description="Name/value fields")
    image: EmbedMedia | None = Field(default=None, description="Large image")
    thumbnail: EmbedMedia | None = Field(default=None, description="Small image")


class SendMessageParams(Strict):
    """A message posted by the webhook."""

    content: str | None = Field(default=None, max_length=2000, description="Message text (Markdown)")
    embeds: list[Embed] = Field(default_factory=list, max_length=10, description="Rich embeds (up to 10)")
    username: str | None = Field(
        default=None, min_length=1, max_length=80, description="Name shown instead of the webhook's"
    )
    avatar_url: str | None = Field(default=None, description="Avatar shown instead of the webhook's")
    tts: bool = Field(default=False, description="Read the message aloud (text-to-speech)")
    allowed_mentions: list[Literal["users", "roles", "everyone"]] = Field(
        default_factory=list,
        description="Which mentions in the content may notify (none by default: @everyone stays inert)",
    )
    thread_id: str | None = Field(
        default=None, pattern=r"^\d{1,20}$", description="Post in this thread of the webhook's channel"
    )
    thread_name: str | None = Field(
        default=None, max_length=100, description="Forum channels: create a thread with this name"
    )
    wait: bool = Field(default=True, description="Wait for Discord to confirm, and return the message")

    @model_validator(mode="after")
    def _says_something(self) -> SendMessageParams:
        if not (self.content and self.content.strip()) and not self.embeds:
            raise ValueError("give `content` or `embeds`")
        if sum(_embed_chars(embed) for embed in self.embeds) > 6000:
            raise ValueError("the embeds hold more than 6000 characters in all, Discord's limit")
        return self


def _embed_chars(embed: Embed) -> int:
    texts = [embed.title, embed.description, embed.footer.text if embed.footer else None]
    texts += [embed.author.name if embed.author else None]
    texts += [part for item in embed.fields for part in (item.name, item.value)]
    return sum(len(text) for text in texts if text)


class SentMessage(BaseModel):
    """The message Discord stored (fields are null with ``wait: false``)."""

    model_config = ConfigDict(extra="ignore")

    delivered: bool = Field(description="Discord accepted the message")
    id: str | None = Field(default=None, description="Message ID")
    channel_id: str | None = Field(default=None, description="Channel (or thread) ID")
    content: str | None = None
    timestamp: datetime | None = None


def _webhook_url(ctx: Context) -> str:
    url = ctx.credentials.get("webhook_url")
    if not isinstance(url, str) or not WEBHOOK_PATH_RE.match(httpx.URL(url).path):
        raise StepError(
            "the connection's webhook_url is not a Discord webhook (https://discord.com/api/webhooks/ID/TOKEN)",
            code="connection_invalid",
        )
    return url


def _check(response: httpx.Response) -> None:
    """Raise the typed error of a refusal; a 429 without Retry-After waits the body's ``retry_after``."""
    if response.status_code == 429 and "retry-after" not in response.headers:
        try:
            body = decode_json(response)
        except StepError:
            body = None
        wait = body.get("retry_after") if isinstance(body, dict) else None
        if isinstance(wait, int | float) and not isinstance(wait, bool) and wait >= 0:
            scope = "global" if body and body.get("global") else "webhook"
            raise RateLimited(
                f"Discord rate limit ({scope}) reached; retry in {wait:.2f}s",
                status_code=429,
                retry_after=float(wait),
                details={"retry_after": float(wait), "global": scope == "global"},
            )
        reset_after = parse_retry_after(response.headers.get("x-ratelimit-reset-after"))
        if reset_after is not None:
            raise RateLimited(
                f"Discord rate limit reached; retry in {reset_after:.2f}s",
                status_code=429,
                retry_after=reset_after,
            )
    raise_for_response(response)


@connector.action(title="Send message")
async def send_message(ctx: Context, params: SendMessageParams) -> SentMessage:
    """Post a message (text and/or up to 10 embeds) to the webhook's channel; returns the stored message."""
    payload: dict[str, Any] = {
        "tts": params.tts,
        "allowed_mentions": {"parse": list(params.allowed_mentions)},
    }
    if params.content is not None:
        payload["content"] = params.content
    if params.embeds:
        payload["embeds"] = [embed.model_dump(mode="json", exclude_none=True) for embed in params.embeds]
    for name in ("username", "avatar_url", "thread_name"):
        value = getattr(params, name)
        if value is not None:
            payload[name] = value
    query: dict[str, Any] = {"wait": "true" if params.wait else "false"}
    if params.thread_id is not None:
        query["thread_id"] = params.thread_id
    response = await ctx.http.post(_webhook_url(ctx), params=query, json=payload)
    _check(response)
    if not params.wait or response.status_code == 204:
        return SentMessage(delivered=True)
    body = decode_json(response)
    return SentMessage.model_validate({**(body if isinstance(body, dict) else {}), "delivered": True})
