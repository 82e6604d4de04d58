"""Encryption at rest of secrets and connection credentials: one :class:`Encryptor` for both.

Keys. The key ring is, newest first:

* ``MASHPIPE_SECRET_KEYS`` (comma-separated) when set, else
* the lines of ``MASHPIPE_SECRET_KEYS_FILE`` (one key per line, newest first; ``#`` comments) when set, else
* the server's secret key alone (``MASHPIPE_SECRET_KEY`` or the generated ``secret.key`` file).

Each entry is key *material* (at least 16 characters); the Fernet key is derived from it with
HKDF-SHA256 (``info = b"mashpipe/encryption/v1"``), so a key used to hash API keys is never used
as-is to encrypt. :class:`~cryptography.fernet.MultiFernet` encrypts with the newest key and decrypts
with any of them; :meth:`Encryptor.rotate` re-encrypts a stored value under the newest key
(``mashpipe keys rotate-secrets`` does it for every stored value).

Binding. What is encrypted is ``{"a": account id, "k": kind, "n": name, "v": value}`` (JSON). On
decrypt the account, kind and name are checked against what the caller expects, so a ciphertext
copied to another account's row, or to another secret's row, fails with :class:`DecryptionFailed`
instead of handing one account's credential to another. ``kind`` separates the namespaces of the
users of this module: ``"secret"`` for ``${{ secrets.NAME }}`` values, ``"connection"`` for stored
connection credentials (any JSON value, such as a dict of fields or OAuth tokens).

Usage::

    encryptor = Encryptor.from_settings(settings)
    token = encryptor.encrypt("s3cr3t", account_id=account.id, name="API_TOKEN")
    encryptor.decrypt(token, account_id=account.id, name="API_TOKEN")  # "s3cr3t"
    encryptor.encrypt({"token": "x"}, account_id=account.id, name="github", kind="connection")
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.errors import MashpipeError
from app.settings import PLACEHOLDER_SECRETS, Settings

HKDF_INFO = b"mashpipe/encryption/v1"
MIN_KEY_LENGTH = 16


class EncryptionKeyError(MashpipeError):
    """The key ring is empty or holds an unusable key (too short, a placeholder, an unreadable file)."""

    code = "invalid_encryption_key"


class DecryptionFailed(MashpipeError):
    """A stored value cannot be decrypted: unknown key, tampered, or bound to another account/name."""

    code = "decryption_failed"


def derive_fernet_key(material: bytes) -> bytes:
    """The Fernet key (URL-safe base64 of 32 bytes) derived from ``material`` with HKDF-SHA256."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(material)
    return base64.urlsafe_b64encode(raw)


def _check_material(entry: str, source: str) -> bytes:
    text = entry.strip()
    if len(text) < MIN_KEY_LENGTH or text.lower() in PLACEHOLDER_SECRETS:
        raise EncryptionKeyError(
            f"every key in {source} must be a real secret of at least {MIN_KEY_LENGTH} characters"
        )
    return text.encode("utf-8")


def parse_key_list(text: str, *, source: str, separator: str = ",") -> list[bytes]:
    """Key materials from a ``separator``-separated list (blank entries and ``#`` comment lines skipped)."""
    keys: list[bytes] = []
    for entry in text.split(separator):
        stripped = entry.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keys.append(_check_material(stripped, source))
    return keys


def read_key_file(path: Path) -> list[bytes]:
    """Key materials from a file: one per line, newest first, ``#`` comments allowed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EncryptionKeyError(f"cannot read the key file {path}: {exc}") from None
    keys = parse_key_list(text, source=f"MASHPIPE_SECRET_KEYS_FILE ({path})", separator="\n")
    if not keys:
        raise EncryptionKeyError(f"the key file {path} holds no key")
    return keys


def key_ring_from_settings(settings: Settings) -> list[bytes]:
    """The key materials for encryption, newest first (see the module docstring for the order)."""
    if settings.secret_keys.strip():
        keys = parse_key_list(settings.secret_keys, source="MASHPIPE_SECRET_KEYS")
        if keys:
            return keys
    if settings.secret_keys_file:
        return read_key_file(Path(settings.secret_keys_file))
    from app.security.keys import load_secret_key  # keys imports storage: keep this module light

    return [load_secret_key(settings)]


class Encryptor:
    """Encrypts and decrypts values bound to ``(account, kind, name)`` under a rotating key ring."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise EncryptionKeyError("the encryption key ring is empty")
        self._fernets = [Fernet(derive_fernet_key(material)) for material in keys]
        self._ring = MultiFernet(self._fernets)
        self._newest = self._fernets[0]

    @classmethod
    def from_settings(cls, settings: Settings) -> Encryptor:
        """The encryptor of the configured key ring."""
        return cls(key_ring_from_settings(settings))

    @property
    def key_count(self) -> int:
        """How many keys the ring holds (the first encrypts, all decrypt)."""
        return len(self._fernets)

    def encrypt(self, value: Any, *, account_id: str, name: str, kind: str = "secret") -> str:
        """Encrypt a JSON-serializable ``value`` bound to the account, kind and name; a text token."""
        _check_kind(kind)
        try:
            payload = orjson.dumps({"a": account_id, "k": kind, "n": name, "v": value})
        except TypeError as exc:
            raise MashpipeError(f"cannot encrypt a value of {kind} {name!r}: {exc}") from None
        return self._ring.encrypt(payload).decode("ascii")

    def decrypt(self, token: str, *, account_id: str, name: str, kind: str = "secret") -> Any:
        """The value encrypted in ``token``, after checking it was bound to this account, kind and name."""
        _check_kind(kind)
        try:
            payload = self._ring.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise DecryptionFailed(
                f"the stored {kind} {name!r} cannot be decrypted: it was encrypted with a key that is not "
                "in MASHPIPE_SECRET_KEYS (or was altered); restore the old key, or store the value again",
                details={"kind": kind, "name": name},
            ) from None
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            document = None
        if not isinstance(document, dict) or "v" not in document:
            raise DecryptionFailed(
                f"the stored {kind} {name!r} does not hold a Mashpipe value",
                details={"kind": kind, "name": name},
            )
        if document.get("a") != account_id or document.get("k") != kind or document.get("n") != name:
            raise DecryptionFailed(
                f"the stored {kind} {name!r} was encrypted for another account or name and is refused",
                details={"kind": kind, "name": name},
            )
        return document["v"]

    def decrypt_text(self, token: str, *, account_id: str, name: str, kind: str = "secret") -> str:
        """:meth:`decrypt` for values that must be strings (secrets)."""
        value = self.decrypt(token, account_id=account_id, name=name, kind=kind)
        if not isinstance(value, str):
            raise DecryptionFailed(
                f"the stored {kind} {name!r} is not a string", details={"kind": kind, "name": name}
            )
        return value

    def is_current(self, token: str) -> bool:
        """Whether ``token`` is already encrypted under the newest key."""
        try:
            self._newest.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True

    def rotate(self, token: str, *, account_id: str, name: str, kind: str = "secret") -> str:
        """``token`` re-encrypted under the newest key (its binding is checked first)."""
        value = self.decrypt(token, account_id=account_id, name=name, kind=kind)
        return self.encrypt(value, account_id=account_id, name=name, kind=kind)


def _check_kind(kind: str) -> None:
    if not kind or not kind.replace("_", "").isalpha() or not kind.islower():
        raise ValueError(f"an encryption kind is a lowercase word ('secret', 'connection'), not {kind!r}")
