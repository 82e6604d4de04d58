"""Webhooks a connector receives: the request they get, signature verifiers, and their errors.

A webhook operation turns one inbound call of the upstream service into the items that start runs::

    @github.webhook(title="Repository events", verify=HmacSha256(header="X-Hub-Signature-256"))
    async def events(ctx: Context, request: WebhookRequest) -> list[Event]:
        \"\"\"One item per delivery.\"\"\"
        return [Event(name=request.headers["x-github-event"], payload=request.body)]

The platform receives the call (``POST /v1/hooks/...``), builds a :class:`WebhookRequest` with
:meth:`WebhookRequest.build` (the raw bytes are kept: signatures are computed over them), checks the
declared verifier against the hook's secret with :func:`check_signature` (a missing or wrong signature
is refused with 401 before the operation runs, and a verifier without a secret refuses everything),
then calls the operation (``app.sdk.invoke.invoke_webhook``) and starts one run per delivery with the
items returned. An operation may return ``[]`` to ignore a call (a ``ping``, an event it does not handle).

``verify`` is a :class:`WebhookVerifier` (``HmacSha256(...)``) or any function
``(request, secret) -> bool``; :func:`verify_hmac_sha256` is the constant-time check behind
:class:`HmacSha256`, reusable on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
from pydantic import BaseModel, ConfigDict

from app.errors import BadRequest, Unauthorized
from app.sdk.errors import ConnectorDefinitionError


class WebhookSignatureInvalid(Unauthorized):
    """401: the call's signature is missing or wrong (or no secret is configured to check it)."""

    code = "webhook_signature_invalid"


class WebhookPayloadInvalid(BadRequest):
    """400: the call's body cannot be decoded as its content type says."""

    code = "webhook_payload_invalid"


class WebhookParams(BaseModel):
    """A webhook operation takes no parameters: everything comes with the call."""

    model_config = ConfigDict(extra="forbid")


def _media_type(headers: httpx.Headers) -> str:
    value: str = headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


def decode_body(raw: bytes, headers: httpx.Headers) -> Any:
    """The body of a call: JSON decoded, a form as a dict of first values, else text (None when empty).

    A body that says it is JSON but is not raises :class:`WebhookPayloadInvalid`.
    """
    if not raw.strip():
        return None
    media = _media_type(headers)
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise WebhookPayloadInvalid(f"the webhook body is not valid JSON: {exc}") from None
    text = raw.decode("utf-8", "replace")
    if media == "application/x-www-form-urlencoded":
        return {key: values[0] for key, values in parse_qs(text, keep_blank_values=True).items()}
    return text


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One inbound call: method, headers (any case), query, the raw body bytes and the decoded body."""

    raw: bytes
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    query: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"
    body: Any = None

    @classmethod
    def build(
        cls,
        raw: bytes,
        headers: Mapping[str, str] | httpx.Headers | None = None,
        *,
        query: Mapping[str, str] | None = None,
        method: str = "POST",
    ) -> WebhookRequest:
        """A request from what the server received; the body is decoded with :func:`decode_body`."""
        if not isinstance(raw, bytes | bytearray):
            raise TypeError("a webhook request is built from the raw body bytes")
        parsed = httpx.Headers(headers or {})
        body = bytes(raw)
        return cls(
            raw=body,
            headers=parsed,
            query=dict(query or {}),
            method=method.upper(),
            body=decode_body(body, parsed),
        )

    def header(self, name: str, default: str | None = None) -> str | None:
        """The value of header ``name`` (any case), or ``default``."""
        value: str | None = self.headers.get(name, default)
        return value


def verify_hmac_sha256(
    secret: str | bytes, body: bytes, signature: str | None, prefix: str = "sha256="
) -> bool:
    """Whether ``signature`` is ``prefix`` + the hex HMAC-SHA256 of ``body`` under ``secret``.

    The comparison is constant-time (``hmac.compare_digest``); the hex digits may be in either case.
    A missing signature, a missing prefix or an empty secret gives False.
    """
    if not secret or signature is None:
        return False
    signature = signature.strip()
    if not signature.startswith(prefix):
        return False
    given = signature[len(prefix) :].lower().encode("utf-8", "replace")
    key = secret.encode() if isinstance(secret, str) else secret
    expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, given)


class WebhookVerifier(ABC):
    """How a webhook call proves it comes from the upstream service."""

    @abstractmethod
    def verify(self, request: WebhookRequest, secret: str) -> bool:
        """Whether ``request`` is authentic under ``secret``."""

    def describe(self) -> dict[str, Any]:
        """JSON-able metadata for the API and docs."""
        return {"kind": "custom"}


class HmacSha256(WebhookVerifier):
    """An HMAC-SHA256 of the raw body in a header: ``X-Hub-Signature-256: sha256=<hex>`` (GitHub style)."""

    def __init__(self, *, header: str, prefix: str = "sha256=") -> None:
        if not isinstance(header, str) or not header.strip():
            raise ConnectorDefinitionError("HmacSha256(header=...) needs the name of the signature header")
        self.header = header.strip()
        self.prefix = prefix

    def verify(self, request: WebhookRequest, secret: str) -> bool:
        return verify_hmac_sha256(secret, request.raw, request.header(self.header), self.prefix)

    def describe(self) -> dict[str, Any]:
        return {"kind": "hmac_sha256", "header": self.header, "prefix": self.prefix}


class _FunctionVerifier(WebhookVerifier):
    def __init__(self, func: Callable[[WebhookRequest, str], bool]) -> None:
        self.func = func

    def verify(self, request: WebhookRequest, secret: str) -> bool:
        return self.func(request, secret) is True


def as_verifier(value: Any, where: str) -> WebhookVerifier | None:
    """``value`` (a verifier, a function ``(request, secret) -> bool`` or None) as a verifier."""
    if value is None or isinstance(value, WebhookVerifier):
        return value
    if callable(value):
        return _FunctionVerifier(value)
    raise ConnectorDefinitionError(
        f"{where}: verify must be a WebhookVerifier such as HmacSha256(header=...) or a function "
        f"(request, secret) -> bool, got {value!r}"
    )


def check_signature(
    verifier: WebhookVerifier | None, request: WebhookRequest, secret: str | None, *, where: str = "webhook"
) -> None:
    """Refuse ``request`` (:class:`WebhookSignatureInvalid`, 401) unless ``verifier`` accepts it.

    Without a verifier every call is accepted. With one, a missing secret refuses every call: a hook
    that should be signed is never left open by a configuration mistake. A verifier that raises counts
    as a refusal.
    """
    if verifier is None:
        return
    if not secret:
        raise WebhookSignatureInvalid(f"{where}: no secret is configured to check the calls' signatures")
    try:
        accepted = verifier.verify(request, secret)
    except Exception:  # a malformed header must not turn into a 500
        accepted = False
    if accepted is not True:
        raise WebhookSignatureInvalid(f"{where}: the call's signature is missing or wrong")
