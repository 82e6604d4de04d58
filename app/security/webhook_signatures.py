"""Signatures of inbound webhook calls: HMAC-SHA256 in a header, and Standard Webhooks.

Both are computed over the RAW body bytes, exactly as received, and compared in constant time.

* :func:`check_hmac_sha256` — GitHub style: ``X-Hub-Signature-256: sha256=<hex>``. The digest after the
  prefix may be hex (either case) or base64 (Shopify style); both encode the same MAC.
* :func:`check_standard_webhooks` — https://www.standardwebhooks.com: the signed content is
  ``"{webhook-id}.{webhook-timestamp}.{body}"``, the key is the base64 part of a ``whsec_...`` secret,
  ``webhook-signature`` holds space-separated ``v1,<base64>`` signatures (one valid one is enough, so
  a sender can rotate keys) and the timestamp must be within ``tolerance`` seconds of the clock, which
  stops replays of old captured calls.

Each check returns ``None`` when the call is authentic, else a short reason (never the expected value).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

STANDARD_SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300.0
"""Seconds a Standard Webhooks timestamp may be away from the clock (5 minutes, as the spec advises)."""
MAX_SIGNATURES = 16
"""Signatures looked at in one ``webhook-signature`` header (a sender rotating keys sends two or three)."""

Clock = Callable[[], float]


def decode_standard_secret(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after an optional ``whsec_`` prefix.

    Raises ``ValueError`` for a secret that is not base64 or decodes to nothing.
    """
    text = secret.strip().removeprefix(STANDARD_SECRET_PREFIX)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a Standard Webhooks secret is `whsec_` followed by base64") from None
    if not key:
        raise ValueError("the Standard Webhooks secret is empty")
    return key


def _decode_digest(text: str) -> bytes | None:
    """A 32-byte digest given as hex or base64, or None."""
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == hashlib.sha256().digest_size else None


def check_hmac_sha256(secret: str, body: bytes, signature: str | None, prefix: str = "") -> str | None:
    """None when ``signature`` is ``prefix`` + the HMAC-SHA256 of ``body`` under ``secret``, else why not."""
    if not secret:
        return "no secret is configured to check the signature"
    if signature is None or not signature.strip():
        return "the signature header is missing"
    signature = signature.strip()
    if not signature.startswith(prefix):
        return "the signature does not have the expected prefix"
    given = _decode_digest(signature[len(prefix) :].strip())
    if given is None:
        return "the signature is not a hex or base64 SHA-256 digest"
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return None if hmac.compare_digest(expected, given) else "the signature does not match the body"


def standard_webhooks_signature(key: bytes, message_id: str, timestamp: int | str, body: bytes) -> str:
    """The ``v1,<base64>`` signature of a call (what a sender puts in ``webhook-signature``)."""
    content = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode("ascii")


def check_standard_webhooks(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    clock: Clock = time.time,
) -> str | None:
    """None when the Standard Webhooks headers of a call (lower-case names) sign ``body``, else why not."""
    if not secret:
        return "no secret is configured to check the signature"
    message_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not message_id or not timestamp or not signatures:
        return "the webhook-id, webhook-timestamp and webhook-signature headers are required"
    try:
        sent_at = int(timestamp.strip())
    except ValueError:
        return "webhook-timestamp is not a number of seconds"
    if abs(clock() - sent_at) > tolerance:
        return "webhook-timestamp is too far from the current time (replayed or delayed call)"
    try:
        key = decode_standard_secret(secret)
    except ValueError as exc:
        return str(exc)
    expected = standard_webhooks_signature(key, message_id, timestamp.strip(), body).encode("ascii")
    for candidate in signatures.split()[:MAX_SIGNATURES]:
        version, _, _value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(expected, candidate.encode("utf-8", "replace")):
            return None
    return "no v1 signature in webhook-signature matches the body"
