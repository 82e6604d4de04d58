"""The server's secret key: from ``MASHPIPE_SECRET_KEY``, or generated once and kept in a file.

Without a configured secret, a random one is created on first use in ``secret.key`` (mode
0600) in the folder of the SQLite database, or in ``./.mashpipe/`` for other databases, so
API keys keep working across restarts. Creation is atomic: concurrent processes (server and
worker) starting together end up with the same key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from app.errors import MashpipeError
from app.settings import Settings
from app.storage.db import normalize_url, sqlite_file

SECRET_FILE_NAME = "secret.key"
MIN_SECRET_LENGTH = 16


def secret_key_path(settings: Settings) -> Path:
    """Where the generated secret lives for these settings."""
    database = sqlite_file(normalize_url(settings.database_url))
    folder = database.parent if database is not None else Path(".mashpipe")
    return (folder / SECRET_FILE_NAME).absolute()


def load_secret_key(settings: Settings) -> bytes:
    """``settings.secret_key`` as bytes if set, else the content of ``secret.key`` (made if missing)."""
    if settings.secret_key is not None:
        return settings.secret_key.encode("utf-8")
    path = secret_key_path(settings)
    if not path.exists():
        _create_secret_file(path)
    return _read_secret_file(path)


def _create_secret_file(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MashpipeError(f"cannot create the folder of {path}: {exc}") from None
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race: use its key
            os.link(temporary, path)
    except OSError as exc:
        raise MashpipeError(f"cannot write the secret key file {path}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _read_secret_file(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        content = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise MashpipeError(f"cannot read the secret key file {path}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MashpipeError(
            f"the secret key file {path} is readable by others; run: chmod 600 {path}",
            details={"path": str(path)},
        )
    if len(content) < MIN_SECRET_LENGTH:
        raise MashpipeError(
            f"the secret key file {path} is empty or too short; delete it to generate a new one "
            "(existing API keys will stop working) or set MASHPIPE_SECRET_KEY",
            details={"path": str(path)},
        )
    return content.encode("ascii")
