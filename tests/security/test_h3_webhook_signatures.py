"""Webhook signatures: HMAC-SHA256 over the raw body, and Standard Webhooks (id, timestamp, v1 signatures)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from app.security.webhook_signatures import (
    check_hmac_sha256,
    check_standard_webhooks,
    decode_standard_secret,
    standard_webhooks_signature,
)

BODY = b'{"action":"opened","number":7}'
KEY = b"0123456789abcdef0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(KEY).decode()
NOW = 1_790_000_000


def hex_mac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_headers(body: bytes, *, timestamp: int = NOW, key: bytes = KEY) -> dict[str, str]:
    return {
        "webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_webhooks_signature(
            key, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", timestamp, body
        ),
    }


def test_hmac_accepts_the_hex_digest_after_the_prefix_in_either_case() -> None:
    signature = "sha256=" + hex_mac("s3cret", BODY)
    assert check_hmac_sha256("s3cret", BODY, signature, "sha256=") is None
    assert check_hmac_sha256("s3cret", BODY, "sha256=" + hex_mac("s3cret", BODY).upper(), "sha256=") is None


def test_hmac_accepts_a_base64_digest_without_prefix() -> None:
    digest = hmac.new(b"s3cret", BODY, hashlib.sha256).digest()
    assert check_hmac_sha256("s3cret", BODY, base64.b64encode(digest).decode()) is None


@pytest.mark.parametrize(
    ("secret", "signature", "reason"),
    [
        ("s3cret", None, "missing"),
        ("s3cret", "  ", "missing"),
        ("s3cret", hex_mac("s3cret", BODY), "prefix"),
        ("s3cret", "sha256=nothex", "digest"),
        ("other", "sha256=" + hex_mac("s3cret", BODY), "does not match"),
        ("", "sha256=" + hex_mac("", BODY), "no secret"),
    ],
)
def test_hmac_refusals_say_why(secret: str, signature: str | None, reason: str) -> None:
    refusal = check_hmac_sha256(secret, BODY, signature, "sha256=")
    assert refusal is not None
    assert reason in refusal


def test_hmac_is_over_the_raw_bytes() -> None:
    signature = "sha256=" + hex_mac("s3cret", BODY)
    reformatted = b'{"action": "opened", "number": 7}'  # same JSON, other bytes
    assert check_hmac_sha256("s3cret", reformatted, signature, "sha256=") is not None


def test_standard_webhooks_accepts_a_valid_signature() -> None:
    headers = standard_headers(BODY)
    assert check_standard_webhooks(WHSEC, BODY, headers, clock=lambda: NOW + 10) is None


def test_standard_webhooks_accepts_any_of_several_signatures_for_key_rotation() -> None:
    headers = standard_headers(BODY)
    old = standard_headers(BODY, key=b"an-older-key-of-sixteen+")["webhook-signature"]
    headers["webhook-signature"] = f"{old} {headers['webhook-signature']}"
    assert check_standard_webhooks(WHSEC, BODY, headers, clock=lambda: NOW) is None


def test_standard_webhooks_refuses_old_and_future_timestamps() -> None:
    headers = standard_headers(BODY)
    assert check_standard_webhooks(WHSEC, BODY, headers, clock=lambda: NOW + 299) is None
    late = check_standard_webhooks(WHSEC, BODY, headers, clock=lambda: NOW + 301)
    early = check_standard_webhooks(WHSEC, BODY, headers, clock=lambda: NOW - 301)
    assert late is not None
    assert "timestamp" in late
    assert early is not None
    assert check_standard_webhooks(WHSEC, BODY, headers, tolerance=600, clock=lambda: NOW + 500) is None


def test_standard_webhooks_refuses_tampering_and_missing_headers() -> None:
    headers = standard_headers(BODY)
    assert check_standard_webhooks(WHSEC, BODY + b" ", headers, clock=lambda: NOW) is not None
    other_id = {**headers, "webhook-id": "msg_other"}
    assert check_standard_webhooks(WHSEC, BODY, other_id, clock=lambda: NOW) is not None
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        partial = {key: value for key, value in headers.items() if key != name}
        refusal = check_standard_webhooks(WHSEC, BODY, partial, clock=lambda: NOW)
        assert refusal is not None
        assert "required" in refusal
    v2 = {**headers, "webhook-signature": headers["webhook-signature"].replace("v1,", "v2,")}
    assert check_standard_webhooks(WHSEC, BODY, v2, clock=lambda: NOW) is not None
    not_number = {**headers, "webhook-timestamp": "yesterday"}
    assert "number" in (check_standard_webhooks(WHSEC, BODY, not_number, clock=lambda: NOW) or "")


def test_standard_secret_decoding() -> None:
    assert decode_standard_secret(WHSEC) == KEY
    assert decode_standard_secret(base64.b64encode(KEY).decode()) == KEY  # the prefix is optional
    with pytest.raises(ValueError, match="base64"):
        decode_standard_secret("whsec_not base64!")
    with pytest.raises(ValueError, match="empty"):
        decode_standard_secret("whsec_")
    wrong = check_standard_webhooks("whsec_%%%", BODY, standard_headers(BODY), clock=lambda: NOW)
    assert wrong is not None
