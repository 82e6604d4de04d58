"""``mashpipe prune``: delete old finished runs now, as the server does every
``run_prune_interval_seconds`` (rules: :mod:`app.runtime.retention`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer

from app.errors import MashpipeError
from app.settings import Settings


def prune(
    days: Annotated[
        float | None,
        typer.Option(
            help=(
                "Delete finished runs older than this many days "
                "(default: MASHPIPE_RUN_RETENTION_DAYS; 0 keeps them)"
            ),
            show_default=False,
        ),
    ] = None,
    max_per_pipeline: Annotated[
        int | None,
        typer.Option(
            "--max-per-pipeline",
            help=(
                "Keep at most this many runs per pipeline "
                "(default: MASHPIPE_RUN_RETENTION_MAX_PER_PIPELINE; 0: no cap)"
            ),
            show_default=False,
        ),
    ] = None,
) -> None:
    """Delete old finished runs and their steps (never queued or running ones), in batches."""
    from app.runtime.retention import prune_runs
    from app.storage.db import Database

    if (days is not None and days < 0) or (max_per_pipeline is not None and max_per_pipeline < 0):
        typer.echo("error: --days and --max-per-pipeline must not be negative", err=True)
        raise typer.Exit(2)
    try:
        settings = Settings()
    except ValueError as exc:
        typer.echo(f"error: invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None
    retention_days = settings.run_retention_days if days is None else days
    keep = settings.run_retention_max_per_pipeline if max_per_pipeline is None else max_per_pipeline

    async def go() -> tuple[int, int]:
        db = Database(settings.database_url)
        try:
            await db.upgrade()
            report = await prune_runs(
                db, retention_days=retention_days, max_per_pipeline=keep, now=datetime.now(UTC)
            )
            return report.by_age, report.by_count
        finally:
            await db.dispose()

    try:
        by_age, by_count = asyncio.run(go())
    except MashpipeError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"pruned {by_age + by_count} run(s): {by_age} older than {retention_days:g} day(s), "
        f"{by_count} beyond the newest {keep} of their pipeline"
    )


__all__ = ["prune"]
