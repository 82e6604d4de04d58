"""An account's secrets: stored encrypted, read back only at the edge of a run.

:class:`SecretStore` joins the repository (ciphertexts, :mod:`app.storage.repositories.secrets`) and
the :class:`~app.security.crypto.Encryptor`. Values go in through :meth:`SecretStore.put` and come
out only through :meth:`SecretStore.resolve`, which the run service calls when a run starts, for the
names its revision references (:func:`referenced_secrets`). The API never returns a value.

Also here: :func:`referenced_secrets`, the names a stored spec reads as ``secrets.NAME``. Key rotation
is in :mod:`app.security.rotation`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest, PayloadTooLarge
from app.pipelines.cel_lexer import split_template
from app.pipelines.references import find_references
from app.security.crypto import Encryptor
from app.storage.models_secrets import Secret
from app.storage.repositories.secrets import SecretRepo, check_secret_name

MAX_SECRET_BYTES = 65_536
"""The largest secret value accepted (UTF-8 bytes)."""

KIND = "secret"
"""The encryption kind of secrets (see :class:`~app.security.crypto.Encryptor`)."""

_LOOSE_REFERENCE = re.compile(r"""\bsecrets\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*["']([^"']+)["']\s*\])""")


def check_secret_value(value: str) -> str:
    """``value`` when it can be stored as a secret; 400/413 otherwise."""
    if not value:
        raise BadRequest("a secret value must not be empty")
    if len(value.encode("utf-8")) > MAX_SECRET_BYTES:
        raise PayloadTooLarge(f"a secret value must be at most {MAX_SECRET_BYTES} bytes")
    return value


class SecretStore:
    """Encrypts secrets on the way in and decrypts them, by name, for runs."""

    def __init__(self, encryptor: Encryptor) -> None:
        self.encryptor = encryptor

    async def put(self, session: AsyncSession, account_id: str, name: str, value: str) -> tuple[Secret, bool]:
        """Store (or replace) a secret; returns the row and True when it was created. Does not commit."""
        check_secret_name(name)
        check_secret_value(value)
        ciphertext = self.encryptor.encrypt(value, account_id=account_id, name=name, kind=KIND)
        return await SecretRepo(session).put(account_id, name, ciphertext)

    async def names(self, session: AsyncSession, account_id: str) -> set[str]:
        """The names of the account's secrets."""
        return await SecretRepo(session).names(account_id)

    async def resolve(self, session: AsyncSession, account_id: str, names: Collection[str]) -> dict[str, str]:
        """The decrypted values of the named secrets the account has (names it lacks are left out).

        Raises :class:`~app.security.crypto.DecryptionFailed` when a stored value cannot be decrypted
        (unknown key, or a ciphertext bound to another account or name).
        """
        wanted = {name for name in names if isinstance(name, str)}
        ciphertexts = await SecretRepo(session).ciphertexts(account_id, wanted)
        return {
            name: self.encryptor.decrypt_text(token, account_id=account_id, name=name, kind=KIND)
            for name, token in ciphertexts.items()
        }


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _names_in(text: str) -> set[str]:
    """Secret names read by ``text``: a template's expressions, or the text as a bare expression."""
    try:
        if "${{" in text:
            spans = [
                (segment.expression_start, segment.expression_start + len(segment.expression))
                for segment in split_template(text)
                if segment.expression is not None
            ]
        else:
            spans = [(0, len(text))]
        refs = [ref for start, end in spans for ref in find_references(text, start, end)]
    except Exception:  # not an expression after all: read it loosely
        refs = []
        spans = []
    found = {ref.name for ref in refs if ref.root == "secrets" and ref.name is not None}
    if not spans or any(ref.root == "secrets" and ref.dynamic for ref in refs):
        found |= {match[1] or match[2] for match in _LOOSE_REFERENCE.finditer(text)}
    return found


def referenced_secrets(spec_document: Any) -> set[str]:
    """The secret names a stored spec reads (``secrets.NAME``, ``secrets["NAME"]``), in any field.

    Errs on the side of more names (a string that merely mentions ``secrets.X`` counts): a run
    decrypts the names found that the account has, and nothing else.
    """
    names: set[str] = set()
    for text in _strings(spec_document):
        if "secrets" in text:
            names |= _names_in(text)
    return names
