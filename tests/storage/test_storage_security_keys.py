"""API-key helpers and the server's secret key file."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.errors import MashpipeError
from app.security.apikeys import (
    generate_api_key,
    hash_api_key,
    key_prefix,
    looks_like_api_key,
    verify_api_key,
)
from app.security.keys import load_secret_key, secret_key_path
from app.settings import Settings

SECRET = b"0123456789abcdef0123"


def test_generated_keys_are_random_and_url_safe():
    keys = {generate_api_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert key.startswith("mp_")
        assert len(key) >= 3 + 32
        assert all(char.isalnum() or char in "-_" for char in key[3:])
        assert looks_like_api_key(key)


def test_hash_is_hmac_sha256_hex():
    key = "mp_example"
    assert hash_api_key(key, SECRET) == hmac.new(SECRET, key.encode(), hashlib.sha256).hexdigest()
    assert len(hash_api_key(key, SECRET)) == 64
    assert hash_api_key(key, SECRET) != hash_api_key(key, SECRET + b"x")
    with pytest.raises(ValueError, match="secret"):
        hash_api_key(key, b"")


def test_prefix_and_verify():
    key = generate_api_key()
    assert key_prefix(key) == key[:10]
    assert len(key_prefix(key)) == 10
    digest = hash_api_key(key, SECRET)
    assert verify_api_key(key, SECRET, digest) is True
    assert verify_api_key(key + "x", SECRET, digest) is False
    assert verify_api_key(key, b"another-secret-key", digest) is False


@pytest.mark.parametrize("key", ["", "has space", "x" * 513, "caf\u00e9", "tab\there"])
def test_implausible_keys(key):
    assert looks_like_api_key(key) is False


def _settings(tmp_path: Path, **values: object) -> Settings:
    values.setdefault("database_url", f"sqlite+aiosqlite:///{tmp_path / 'data' / 'm.db'}")
    return Settings(**values)  # type: ignore[arg-type]


def test_configured_secret_wins(tmp_path):
    settings = _settings(tmp_path, secret_key="a-configured-secret-value")
    assert load_secret_key(settings) == b"a-configured-secret-value"
    assert not (tmp_path / "data" / "secret.key").exists()


def test_generated_secret_is_kept_next_to_the_sqlite_file(tmp_path):
    settings = _settings(tmp_path)
    path = tmp_path / "data" / "secret.key"
    assert secret_key_path(settings) == path
    first = load_secret_key(settings)
    assert len(first) >= 32
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret_key(settings) == first  # kept across restarts
    assert load_secret_key(_settings(tmp_path)) == first
    assert [item.name for item in path.parent.iterdir()] == ["secret.key"]  # no temporary left


def test_other_databases_use_dot_mashpipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url in ("postgresql+asyncpg://u:p@127.0.0.1/db", "sqlite+aiosqlite://"):
        settings = _settings(tmp_path, database_url=url)
        assert secret_key_path(settings) == tmp_path / ".mashpipe" / "secret.key"
    assert len(load_secret_key(settings)) >= 32
    assert (tmp_path / ".mashpipe" / "secret.key").is_file()


def test_relative_sqlite_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = _settings(tmp_path, database_url="sqlite+aiosqlite:///var/m.db")
    assert secret_key_path(settings) == tmp_path / "var" / "secret.key"


def test_concurrent_first_use_agrees_on_one_key(tmp_path):
    settings = _settings(tmp_path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: load_secret_key(settings), range(16)))
    assert len(keys) == 1


def test_open_permissions_are_refused(tmp_path):
    settings = _settings(tmp_path)
    load_secret_key(settings)
    path = secret_key_path(settings)
    os.chmod(path, 0o644)
    with pytest.raises(MashpipeError, match="chmod 600"):
        load_secret_key(settings)


def test_empty_file_is_a_clear_error(tmp_path):
    settings = _settings(tmp_path)
    path = secret_key_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text("short\n")
    path.chmod(0o600)
    with pytest.raises(MashpipeError, match="too short"):
        load_secret_key(settings)


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = _settings(tmp_path, database_url=f"sqlite+aiosqlite:///{blocker / 'm.db'}")
    with pytest.raises(MashpipeError, match="cannot"):
        load_secret_key(settings)
