"""Telegram Bot API (https://core.telegram.org/bots/api): send messages, receive the bot's updates.

The connection holds the bot token from @BotFather (``{"kind": "path_token", "token": "123456:ABC..."}``).
Telegram wants it in the URL path (``https://api.telegram.org/bot<token>/sendMessage``): the SDK's
``PathToken`` puts it there, and masks it in httpx's log lines and in every error, so the token
never shows up in logs or run records. Error messages here name the Bot API method, never the URL.

Telegram answers ``{"ok": false, "error_code", "description", "parameters": {"retry_after",
"migrate_to_chat_id"}}`` on failure: 401 fails as ``auth_failed``, 429 as ``rate_limited`` waiting
``retry_after``, 5xx as retryable upstream errors, anything else as an ``upstream_error`` carrying
Telegram's description ("Bad Request: chat not found"). Telegram allows about 30 messages a second
per bot (declared), one a second per chat and 20 a minute per group.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import httpx
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from app.sdk import (
    AuthFailed,
    Connector,
    Context,
    InvalidResponse,
    NotFound,
    PathToken,
    Poll,
    RateLimit,
    RateLimited,
    StepError,
    UpstreamError,
    parse_retry_after,
)

connector = Connector(
    key="telegram",
    version="1.0.0",
    title="Telegram",
    description="Send messages with a Telegram bot, and start runs on the messages it receives.",
    base_url="https://api.telegram.org",
    auth=[PathToken(prefix="/bot", label="Bot token (from @BotFather)")],
    rate_limit=RateLimit(30, per="second"),
    test_request=("GET", "/getMe"),
    docs_url="https://core.telegram.org/bots/api",
)

MESSAGE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_message",
        "edited_business_message",
    }
)
UpdateType = Literal[
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_message",
    "edited_business_message",
    "message_reaction",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class TelegramModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class User(TelegramModel):
    """A Telegram user or bot."""

    id: int
    is_bot: bool = False
    first_name: str | None = None
    username: str | None = None


class Chat(TelegramModel):
    """A private chat, group, supergroup or channel."""

    id: int
    type: str = Field(description="private, group, supergroup or channel")
    title: str | None = None
    username: str | None = None
    first_name: str | None = None


class Message(TelegramModel):
    """A message."""

    message_id: int
    date: datetime = Field(description="When it was sent")
    chat: Chat
    sender: User | None = Field(default=None, validation_alias=AliasChoices("from", "sender"))
    text: str | None = None
    caption: str | None = None
    message_thread_id: int | None = None


class Update(TelegramModel):
    """One update received by the bot."""

    update_id: int
    type: str = Field(description="message, edited_message, channel_post, callback_query...")
    message: Message | None = Field(default=None, description="The message, for message-like updates")
    text: str | None = Field(default=None, description="The message text (or caption, or callback data)")
    chat_id: int | None = Field(default=None, description="The chat the update comes from")
    data: dict[str, Any] = Field(default_factory=dict, description="The update's own object, as sent")

    @model_validator(mode="before")
    @classmethod
    def _from_api(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or "type" in raw:
            return raw
        kind = next((key for key in raw if key != "update_id"), "unknown")
        inner = _dict(raw.get(kind))
        message = inner if kind in MESSAGE_TYPES else inner.get("message")
        chat = message.get("chat") if isinstance(message, dict) else inner.get("chat")
        text = inner.get("data") if kind == "callback_query" else None
        if isinstance(message, dict):
            text = text or message.get("text") or message.get("caption")
        return {
            "update_id": raw.get("update_id"),
            "type": kind,
            "message": message if isinstance(message, dict) else None,
            "text": text if isinstance(text, str) else None,
            "chat_id": chat.get("id") if isinstance(chat, dict) else None,
            "data": inner,
        }


ChatId = int | str


class SendMessageParams(BaseModel):
    """A text message sent by the bot."""

    model_config = ConfigDict(extra="forbid")

    chat_id: ChatId = Field(description="Chat ID (a number, negative for groups) or @channelusername")
    text: str = Field(min_length=1, max_length=4096, description="Message text (1-4096 characters)")
    parse_mode: Literal["MarkdownV2", "HTML", "Markdown"] | None = Field(
        default=None, description="How to read entities in the text (none: plain text)"
    )
    disable_link_preview: bool = Field(default=False, description="Do not show a preview of the first link")
    disable_notification: bool = Field(default=False, description="Send silently")
    protect_content: bool = Field(default=False, description="Forbid forwarding and saving")
    reply_to_message_id: int | None = Field(
        default=None, ge=1, description="Reply to this message of the chat"
    )
    message_thread_id: int | None = Field(default=None, ge=1, description="Forum supergroups: the topic")

    @model_validator(mode="after")
    def _chat_id_shape(self) -> SendMessageParams:
        if isinstance(self.chat_id, str) and not (
            self.chat_id.startswith("@") or self.chat_id.lstrip("-").isdigit()
        ):
            raise ValueError("chat_id is a number or an @channelusername")
        return self


class UpdatesParams(BaseModel):
    """Which updates to receive."""

    model_config = ConfigDict(extra="forbid")

    allowed_updates: list[UpdateType] = Field(
        default_factory=list, description="Update types to receive (empty: Telegram's default, all but a few)"
    )
    limit: int = Field(default=100, ge=1, le=100, description="At most this many updates per poll")


def _telegram_error(method: str, response: httpx.Response, body: Any) -> StepError:
    """The typed error of a failed Bot API call (the URL, holding the token, is never named)."""
    status = response.status_code
    info = _dict(body)
    code: int = info["error_code"] if isinstance(info.get("error_code"), int) else status
    description = info.get("description") if isinstance(info.get("description"), str) else None
    parameters = _dict(info.get("parameters"))
    message = f"Telegram {method} failed ({code})" + (f": {description}" if description else "")
    details: dict[str, Any] = {"method": method, "error_code": code, "description": description}
    if isinstance(parameters.get("migrate_to_chat_id"), int):
        details["migrate_to_chat_id"] = parameters["migrate_to_chat_id"]
        message += f"; the group is now the supergroup {parameters['migrate_to_chat_id']}"
    if code == 429 or status == 429:
        wait = parameters.get("retry_after")
        retry_after = float(wait) if isinstance(wait, int | float) and not isinstance(wait, bool) else None
        if retry_after is None:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        details["retry_after"] = retry_after
        return RateLimited(message, status_code=status, details=details, retry_after=retry_after)
    if code == 401 or status in (401, 403) or code == 403:
        return AuthFailed(message, status_code=status, details=details)
    if code == 404 or status == 404:
        return NotFound(message + " (is the bot token complete?)", status_code=status, details=details)
    if status >= 500 or code >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return UpstreamError(
            message, status_code=status, details=details, retry_kind="http_5xx", retry_after=retry_after
        )
    return UpstreamError(message, status_code=status, details=details)


async def call(ctx: Context, method: str, payload: dict[str, Any]) -> Any:
    """Call a Bot API method with a JSON body; its ``result``, or the typed error."""
    response = await ctx.http.post(f"/{method}", json=payload)
    try:
        body = response.json() if response.content.strip() else None
    except ValueError:
        if response.is_success:
            raise InvalidResponse(f"Telegram {method} answered with a body that is not JSON") from None
        body = None
    if response.is_success and isinstance(body, dict) and body.get("ok") is True:
        return body.get("result")
    if response.is_success and not (isinstance(body, dict) and body.get("ok") is False):
        raise InvalidResponse(f"Telegram {method} answered without `ok`")
    raise _telegram_error(method, response, body)


@connector.action(title="Send message")
async def send_message(ctx: Context, params: SendMessageParams) -> Message:
    """Send a text message to a chat, group or channel; returns the sent message.

    The bot must be in the group or an admin of the channel; a private chat needs the user to have
    started the bot first.
    """
    payload: dict[str, Any] = {"chat_id": params.chat_id, "text": params.text}
    if params.parse_mode is not None:
        payload["parse_mode"] = params.parse_mode
    if params.disable_link_preview:
        payload["link_preview_options"] = {"is_disabled": True}
    if params.disable_notification:
        payload["disable_notification"] = True
    if params.protect_content:
        payload["protect_content"] = True
    if params.reply_to_message_id is not None:
        payload["reply_parameters"] = {
            "message_id": params.reply_to_message_id,
            "allow_sending_without_reply": True,
        }
    if params.message_thread_id is not None:
        payload["message_thread_id"] = params.message_thread_id
    return Message.model_validate(await call(ctx, "sendMessage", payload))


@connector.poll(title="New updates", dedupe=lambda update: update.update_id)
async def updates(ctx: Context, params: UpdatesParams, cursor: int | None) -> Poll[Update]:
    """Updates the bot received (messages, channel posts, button presses...), oldest first.

    Uses ``getUpdates`` (short polling) with ``offset`` as the cursor: each poll confirms the
    updates of the previous one. The first poll returns the pending updates (Telegram keeps them
    24 hours). Does not work while the bot has a webhook set (Telegram answers 409).
    """
    payload: dict[str, Any] = {"timeout": 0, "limit": params.limit}
    if cursor is not None:
        payload["offset"] = cursor
    if params.allowed_updates:
        payload["allowed_updates"] = list(params.allowed_updates)
    result = await call(ctx, "getUpdates", payload)
    if not isinstance(result, list):
        raise InvalidResponse("Telegram getUpdates did not return a list")
    found = sorted((Update.model_validate(raw) for raw in result), key=lambda update: update.update_id)
    next_offset = found[-1].update_id + 1 if found else cursor
    return Poll(items=found, cursor=next_offset)
