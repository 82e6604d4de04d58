"""``mashpipe connectors ...`` and ``mashpipe connector new``: look at, document and create connectors.

::

    mashpipe connectors list [--json]                 installed connectors: key, version, operations, source
    mashpipe connectors show KEY [--json]             one connector: auth, rate limit, each operation and
                                                      its parameters
    mashpipe connectors docs [--check] [--dir PATH]   write (or check) docs/connectors/KEY.md and index.md
    mashpipe connector new NAME [--dir PATH]          scaffold a connector package (tests pass at once)

Every installed connector is listed (the ``MASHPIPE_CONNECTORS`` allowlist only limits what a server
loads); a connector that fails to load is reported with its distribution, exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Annotated

import typer

from app.errors import MashpipeError

if TYPE_CHECKING:
    from app.registry import Registry
    from app.sdk.connector import Connector, Operation

connectors_cli = typer.Typer(help="List, show and document the installed connectors.", no_args_is_help=True)
connector_cli = typer.Typer(help="Create a connector package.", no_args_is_help=True)

DOCS_DIR = Path("docs/connectors")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def installed_registry() -> Registry:
    """Every installed connector (the allowlist ignored); exit 2 with the reason when one is broken."""
    from app.registry import Registry

    try:
        return Registry.load(SimpleNamespace(connector_allowlist=None))
    except MashpipeError as exc:
        raise _fail(f"cannot load the connectors: {exc.message}", 2) from None


@connectors_cli.command("list")
def list_connectors(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """The installed connectors: key, version, title, operations and where each comes from."""
    registry = installed_registry()
    if as_json:
        entries = registry.summary()
        for entry in entries:
            entry["source"] = registry.source(entry["key"])
        typer.echo(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    table: list[tuple[str, ...]] = [("KEY", "VERSION", "TITLE", "ACTIONS", "TRIGGERS", "SOURCE")]
    for c in registry.connectors():
        triggers = len(c.polls()) + len(c.webhooks())
        table.append(
            (c.key, c.version, c.title, str(len(c.actions())), str(triggers), registry.source(c.key))
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]).rstrip())
    typer.echo(f"\n{len(registry)} connectors; `mashpipe connectors show KEY` for details.")


def _operation_lines(op: Operation) -> list[str]:
    from app.registry.summary import fields, output_text

    first_line = op.description.strip().splitlines()[0] if op.description.strip() else ""
    lines = [f"  {op.uses}  ({op.kind}) {op.title}", f"      {first_line}"]
    if op.kind != "webhook":
        rows = fields(op.input_schema)
        if not rows:
            lines.append("      with: (no parameters)")
        for row in rows:
            need = "required" if row.required else f"default {row.default}" if row.default else "optional"
            text = f"      - {row.name}: {row.type} ({need})"
            if row.description:
                text += f"  {row.description}"
            lines.append(text)
    lines.append(f"      returns: {output_text(op.output_schema)}")
    return lines


def describe_text(connector: Connector, source: str) -> list[str]:
    """The lines ``connectors show`` prints for ``connector``."""
    lines = [f"{connector.title} ({connector.key} {connector.version}), from {source}", connector.description]
    if connector.base_url:
        lines.append(f"base URL: {connector.base_url}")
    auth = ", ".join(f"{item.kind} ({item.label})" for item in connector.auth)
    lines.append(f"auth: {auth}")
    if connector.rate_limit is not None:
        lines.append(
            f"rate limit: {connector.rate_limit.requests} requests per {connector.rate_limit.per}, "
            "per connection"
        )
    if connector.docs_url:
        lines.append(f"docs: {connector.docs_url}")
    for title, ops in (
        ("actions", connector.actions()),
        ("polling triggers", connector.polls()),
        ("webhooks", connector.webhooks()),
    ):
        if ops:
            lines.append(f"\n{title}:")
            for op in ops:
                lines.extend(_operation_lines(op))
    return lines


@connectors_cli.command("show")
def show_connector(
    key: Annotated[str, typer.Argument(help="The connector's key, such as github")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the full description with JSON Schemas")
    ] = False,
) -> None:
    """One connector: auth, rate limit, and each operation with its parameters."""
    registry = installed_registry()
    if key not in registry:
        raise _fail(f"no connector {key!r} is installed; installed: {', '.join(registry.keys()) or 'none'}")
    if as_json:
        typer.echo(json.dumps(registry.describe(key), indent=2, ensure_ascii=False))
        return
    for line in describe_text(registry.get(key), registry.source(key)):
        typer.echo(line)


@connectors_cli.command("docs")
def connectors_docs(
    check: Annotated[bool, typer.Option(help="Exit 1 when the committed pages are out of date")] = False,
    directory: Annotated[Path, typer.Option("--dir", help="Where the pages live")] = DOCS_DIR,
) -> None:
    """Write one Markdown page per connector (and an index) from their schemas; or --check them."""
    from app.registry.docs import check_docs, write_docs

    connectors = installed_registry().connectors()
    if check:
        drift = check_docs(connectors, directory)
        if not drift.clean:
            typer.echo(
                f"connector docs in {directory} are stale ({drift.describe()}); "
                "run `mashpipe connectors docs`",
                err=True,
            )
            raise typer.Exit(1)
        typer.echo(f"connector docs in {directory} are up to date ({len(connectors)} connectors)")
        return
    written = write_docs(connectors, directory)
    typer.echo(f"wrote {len(written)} pages to {directory}")


@connector_cli.command("new")
def new_connector(
    name: Annotated[str, typer.Argument(help="The connector key and package name, such as weather_api")],
    directory: Annotated[
        Path, typer.Option("--dir", help="Parent directory of the new package (default: here)")
    ] = Path("."),
    title: Annotated[str | None, typer.Option(help="Human title (default: from the name)")] = None,
) -> None:
    """Scaffold a connector package: pyproject with its entry point, the connector, its tests, a README."""
    from app.registry.scaffold import scaffold

    try:
        target = scaffold(name, directory, title=title, taken=installed_registry().keys())
    except MashpipeError as exc:
        raise _fail(exc.message) from None
    except OSError as exc:
        raise _fail(f"cannot write the package: {exc}") from None
    typer.echo(f"created {target}")
    typer.echo(f"next: cd {target} && pip install -e '.[test]' && pytest")
