"""First start of a server: the ``default`` account and its key, and the example pipelines.

* When no account exists, account ``default`` is created with exactly ``MASHPIPE_BOOTSTRAP_KEY``; without
  it, a key is generated and handed back so the caller can show it once (it is never stored in clear).
* The YAML files of ``settings.examples_dir`` are loaded into the ``default`` account: invalid ones are
  logged and skipped; a pipeline that already exists is left as it is (the stored one wins, so a
  restart never overwrites changes made through the API).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import MashpipeError
from app.pipelines.catalog import OperationCatalog
from app.runtime.pipelines import create_pipeline, validate_problems
from app.security.apikeys import generate_api_key, hash_api_key, key_prefix, looks_like_api_key
from app.settings import Settings
from app.storage.db import Database
from app.storage.repositories import AccountRepo, ApiKeyRepo, PipelineRepo

logger = logging.getLogger("mashpipe.bootstrap")

DEFAULT_ACCOUNT = "default"
MIN_KEY_LENGTH = 16


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What the first start did."""

    account_id: str | None  # the `default` account, when there is one
    created: bool  # the account was created now
    generated_key: str | None  # a key generated now (no MASHPIPE_BOOTSTRAP_KEY): show it once


@dataclass(slots=True)
class ExamplesReport:
    """What loading the examples folder did, file by file."""

    loaded: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # already stored
    invalid: list[str] = field(default_factory=list)


async def create_account(db: Database, secret: bytes, name: str, key: str | None = None) -> tuple[str, str]:
    """Create an account with one API key (``key``, or a generated one); returns ``(account_id, key)``."""
    key = key or generate_api_key()
    async with db.session() as session:
        account = await AccountRepo(session).create(name)
        await ApiKeyRepo(session).create(account.id, "initial", hash_api_key(key, secret), key_prefix(key))
        await session.commit()
        return account.id, key


async def ensure_default_account(db: Database, settings: Settings, secret: bytes) -> Bootstrap:
    """Create account ``default`` when the database has no account yet."""
    given = settings.bootstrap_key
    if given is not None and (len(given) < MIN_KEY_LENGTH or not looks_like_api_key(given)):
        raise MashpipeError(
            f"MASHPIPE_BOOTSTRAP_KEY must be at least {MIN_KEY_LENGTH} printable ASCII characters, no spaces"
        )
    async with db.session() as session:
        accounts = AccountRepo(session)
        if await accounts.count() > 0:
            existing = await accounts.get_by_name(DEFAULT_ACCOUNT)
            return Bootstrap(existing.id if existing else None, created=False, generated_key=None)
    account_id, key = await create_account(db, secret, DEFAULT_ACCOUNT, given)
    if given:
        logger.info("created account %r with the key from MASHPIPE_BOOTSTRAP_KEY", DEFAULT_ACCOUNT)
        return Bootstrap(account_id, created=True, generated_key=None)
    return Bootstrap(account_id, created=True, generated_key=key)


def _read_folder(folder: Path) -> list[tuple[Path, str | Exception]] | None:
    """The YAML files of ``folder`` with their text (or the error reading them); None without folder."""
    if not folder.is_dir():
        return None
    files: list[tuple[Path, str | Exception]] = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            files.append((path, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            files.append((path, exc))
    return files


async def load_examples(
    db: Database, catalog: OperationCatalog | None, folder: Path, account_id: str, *, max_bytes: int
) -> ExamplesReport:
    """Load every ``*.yaml``/``*.yml`` file of ``folder`` into the account (see the module docstring)."""
    report = ExamplesReport()
    files = await asyncio.to_thread(_read_folder, folder)
    if files is None:
        logger.warning("examples folder %s does not exist; no example loaded", folder)
        return report
    for path, source in files:
        if isinstance(source, Exception):
            logger.warning("example %s skipped: cannot read it (%s)", path, source)
            report.invalid.append(path.name)
            continue
        spec, problems = validate_problems(source, catalog, max_bytes=max_bytes)
        if spec is None:
            first = problems[0] if problems else {"line": 1, "column": 1, "message": "?", "code": "invalid"}
            logger.warning(
                "example %s skipped: %d problem(s), first %s:%s:%s: %s [%s]",
                path,
                len(problems),
                path.name,
                first["line"],
                first["column"],
                first["message"],
                first["code"],
            )
            report.invalid.append(path.name)
            continue
        async with db.session() as session:
            if await PipelineRepo(session).get(account_id, spec.name) is not None:
                report.kept.append(path.name)
                continue
            await create_pipeline(session, account_id, source, spec)
            await session.commit()
        report.loaded.append(path.name)
    logger.info(
        "examples from %s: %d loaded, %d already stored, %d invalid",
        folder,
        len(report.loaded),
        len(report.kept),
        len(report.invalid),
    )
    return report
