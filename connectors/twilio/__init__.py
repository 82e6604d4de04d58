"""``twilio``: send SMS and MMS messages with Twilio's Programmable Messaging (REST API 2010-04-01).

Auth is HTTP basic with the Account SID as user name and the auth token as password (an API key
SID ``SK...`` and its secret work too; then give ``account_sid`` in the step, since the key's SID is
not the account's).

* ``twilio.send_sms``: ``POST /Accounts/{AccountSid}/Messages.json``, form-encoded (``To``, ``From``
  or ``MessagingServiceSid``, ``Body``, ``MediaUrl``, ``StatusCallback``). The answer is the queued
  message: its ``sid`` and ``status`` (``queued``, ``accepted``...); delivery happens later.

Twilio errors (``{"code", "message", "more_info", "status"}``) are shown in the step error with the
Twilio error code, such as ``The 'To' number +1555 is not a valid phone number. (Twilio error
21211, https://www.twilio.com/docs/errors/21211)``.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.errors import StepError
from app.sdk import BasicAuth, Connector, Context, InvalidResponse, decode_json, raise_for_response

E164 = r"^\+[1-9][0-9]{1,14}$"
ACCOUNT_SID = r"^AC[0-9a-fA-F]{32}$"

connector = Connector(
    key="twilio",
    version="1.0.0",
    title="Twilio",
    description="Send SMS and MMS messages with Twilio.",
    base_url="https://api.twilio.com/2010-04-01",
    auth=[BasicAuth(label="Account SID (user name) and auth token (password)")],
    test_request=("GET", "/Accounts.json?PageSize=1"),
    docs_url="https://www.twilio.com/docs/messaging/api/message-resource",
)


def explain_error(body: Any) -> str | None:
    """``{"code", "message", "more_info"}`` as ``message (Twilio error CODE, MORE_INFO)``."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return None
    tags = []
    if isinstance(body.get("code"), int):
        tags.append(f"Twilio error {body['code']}")
    if isinstance(body.get("more_info"), str):
        tags.append(body["more_info"])
    return f"{body['message']} ({', '.join(tags)})" if tags else str(body["message"])


def _https(url: str) -> str:
    if not url.startswith("https://") or len(url) <= len("https://"):
        raise ValueError("must be an https:// URL")
    return url


class SendParams(BaseModel):
    """A message to send."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    to: str = Field(pattern=E164, description="Recipient phone number in E.164 format (+14155552671)")
    from_: str | None = Field(
        default=None,
        alias="from",
        min_length=2,
        max_length=64,
        description="A Twilio number you own (E.164), or an alphanumeric sender id",
    )
    messaging_service_sid: str | None = Field(
        default=None,
        pattern=r"^MG[0-9a-fA-F]{32}$",
        description="Send through a Messaging Service (MG...) instead of a `from` number",
    )
    body: str | None = Field(
        default=None, min_length=1, max_length=1600, description="The text (up to 1600 characters)"
    )
    media_urls: list[str] = Field(
        default_factory=list, max_length=10, description="Up to 10 https URLs of media to attach (MMS)"
    )
    status_callback: str | None = Field(
        default=None, max_length=2000, description="An https URL Twilio calls with delivery status updates"
    )
    account_sid: str | None = Field(
        default=None,
        pattern=ACCOUNT_SID,
        description="The account (AC...) to send from; default: the connection's user name",
    )

    _urls = field_validator("media_urls")(lambda urls: [_https(url) for url in urls])

    @field_validator("status_callback")
    @classmethod
    def _callback(cls, value: str | None) -> str | None:
        return None if value is None else _https(value)

    @model_validator(mode="after")
    def _sender_and_content(self) -> SendParams:
        if (self.from_ is None) == (self.messaging_service_sid is None):
            raise ValueError("give exactly one of `from` or messaging_service_sid")
        if self.body is None and not self.media_urls:
            raise ValueError("give a body, media_urls, or both")
        return self

    def form(self) -> dict[str, str | list[str]]:
        """The form fields of the request (``MediaUrl`` repeated)."""
        fields: dict[str, str | list[str]] = {"To": self.to}
        if self.from_ is not None:
            fields["From"] = self.from_
        if self.messaging_service_sid is not None:
            fields["MessagingServiceSid"] = self.messaging_service_sid
        if self.body is not None:
            fields["Body"] = self.body
        if self.media_urls:
            fields["MediaUrl"] = list(self.media_urls)
        if self.status_callback is not None:
            fields["StatusCallback"] = self.status_callback
        return fields


class Message(BaseModel):
    """A message resource."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    sid: str = Field(description="Message SID (SM... or MM...)")
    account_sid: str = Field(description="The account it was sent from")
    status: str = Field(description="queued, accepted, sending, sent, delivered, failed, undelivered...")
    to: str = Field(description="Recipient")
    sender: str | None = Field(
        default=None,
        validation_alias="from",
        description="The `from` number or sender id (null with a service)",
    )
    messaging_service_sid: str | None = Field(default=None, description="Messaging Service used, if any")
    body: str = Field(default="", description="The text")
    num_segments: int = Field(default=0, description="SMS segments the text takes")
    num_media: int = Field(default=0, description="Media attached")
    direction: str = Field(default="outbound-api", description="outbound-api for sent messages")
    date_created: datetime | None = Field(default=None, description="When Twilio created it (UTC)")
    price: str | None = Field(default=None, description="Price (negative, set once sent)")
    price_unit: str | None = Field(default=None, description="Currency of the price")
    error_code: int | None = Field(default=None, description="Twilio error code of a failed message")
    error_message: str | None = Field(default=None, description="Description of that error")
    uri: str | None = Field(default=None, description="The resource's path in the API")

    @field_validator("date_created", mode="before")
    @classmethod
    def _rfc2822(cls, value: Any) -> Any:
        if isinstance(value, str) and value and not value[0].isdigit():
            return parsedate_to_datetime(value)  # Twilio writes dates as "Thu, 30 Jul 2015 20:12:31 +0000"
        return value


@connector.action(title="Send SMS")
async def send_sms(ctx: Context, params: SendParams) -> Message:
    """Send an SMS (or an MMS with media_urls); returns the queued message with its SID and status."""
    account = params.account_sid or ctx.credentials.get("username")
    if not isinstance(account, str) or not re.fullmatch(ACCOUNT_SID, account):
        raise StepError(
            "twilio: the connection's user name is not an Account SID (AC...); give account_sid",
            code="invalid_params",
        )
    response = await ctx.http.request("POST", f"/Accounts/{account}/Messages.json", data=params.form())
    raise_for_response(response, explain=explain_error)
    raw = decode_json(response)
    if not isinstance(raw, dict):
        raise InvalidResponse("twilio: the answer is not a message object")
    return Message.model_validate(raw)
