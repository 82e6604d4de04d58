"""API keys: how they look, how they are hashed, how they are checked.

A key is ``mp_`` followed by 43 URL-safe random characters (256 bits). The server keeps only
``hash_api_key(key, secret)`` (HMAC-SHA256 with the server's secret key, hex) and
``key_prefix(key)`` (to let people recognise their keys); the key itself is shown once.

Lookups go by the HMAC, so comparing a presented key never touches the stored secret value
character by character; where two hashes are compared in code, :func:`verify_api_key` uses
:func:`hmac.compare_digest` (constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "mp_"
KEY_RANDOM_BYTES = 32
PREFIX_LENGTH = 10
MAX_KEY_LENGTH = 512
"""Longer presented keys are refused before hashing (see :func:`looks_like_api_key`)."""


def generate_api_key() -> str:
    """A new random API key: ``mp_`` + 43 URL-safe characters."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def hash_api_key(key: str, secret: bytes) -> str:
    """HMAC-SHA256 of the key under the server's secret, as 64 hex characters."""
    if not secret:
        raise ValueError("the secret key must not be empty")
    return hmac.new(secret, key.encode("utf-8"), hashlib.sha256).hexdigest()


def key_prefix(key: str) -> str:
    """The first characters of a key, kept in clear to tell keys apart (``mp_AbCdEfG``)."""
    return key[:PREFIX_LENGTH]


def looks_like_api_key(key: str) -> bool:
    """A cheap sanity check of a presented key (non-empty, printable ASCII, not absurdly long).

    Keys given through ``MASHPIPE_BOOTSTRAP_KEY`` may have any form, so this does not insist
    on the ``mp_`` prefix.
    """
    return 0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable() and " " not in key


def verify_api_key(key: str, secret: bytes, expected_hash: str) -> bool:
    """True when ``key`` hashes to ``expected_hash`` (compared in constant time)."""
    return hmac.compare_digest(hash_api_key(key, secret), expected_hash)
