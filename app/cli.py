"""The ``mashpipe`` command line.

::

    mashpipe serve [--host H] [--port P] [--banner]   the API server (migrates the database itself)
    mashpipe validate FILE...                          FILE:LINE:COL: message [code]; exit 1 on problems
    mashpipe run FILE [--input k=v]... [--json-inputs '{...}']
                                                       run locally: no server, no database
    mashpipe accounts create NAME                      prints the new account's API key, once
    mashpipe accounts list | keys create|list|revoke|rotate-secrets   (app.cli_security)
    mashpipe prune [--days N] [--max-per-pipeline N]   delete old finished runs (app.cli_runs)
    mashpipe openapi [--check]                         write (or check) openapi/openapi.json and
                                                       openapi/pipeline.schema.json
    mashpipe connectors list | show KEY | docs [--check]   installed connectors (app.cli_connectors)
    mashpipe connector new NAME [--dir PATH]           scaffold a connector package
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli_connectors import connector_cli, connectors_cli
from app.cli_runs import prune
from app.cli_security import accounts_list, keys_cli
from app.errors import MashpipeError, Unprocessable
from app.settings import Settings

cli = typer.Typer(
    name="mashpipe",
    help="Mashpipe: pipelines in YAML that compose APIs, run for you.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
accounts_cli = typer.Typer(help="Manage accounts.", no_args_is_help=True)
cli.add_typer(accounts_cli, name="accounts")
accounts_cli.command("list")(accounts_list)
cli.add_typer(keys_cli, name="keys")
cli.add_typer(connectors_cli, name="connectors")
cli.add_typer(connector_cli, name="connector")
cli.command("prune")(prune)

OPENAPI_FILE = "openapi.json"
PIPELINE_SCHEMA_FILE = "pipeline.schema.json"


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        raise _fail(f"invalid settings: {exc}", 2) from None


def _registry(settings: Settings) -> Any:
    from app.registry import Registry

    try:
        return Registry.load(settings)
    except Exception as exc:  # a broken plugin must be reported, not dumped as a traceback
        raise _fail(f"cannot load the connectors: {exc}", 2) from None


# -- serve ----------------------------------------------------------------------------------------


GC_THRESHOLDS = (20_000, 50, 100)
"""The collector's thresholds in ``mashpipe serve`` (CPython's defaults: 700, 10, 10)."""


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default: MASHPIPE_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: MASHPIPE_PORT)")] = None,
    banner: Annotated[bool, typer.Option(help="Print the URL, the API key and a first curl command")] = False,
) -> None:
    """Run the API server. It migrates its database and bootstraps the `default` account itself."""
    import uvicorn

    from app.main import create_app
    from app.runtime.state import State

    settings = _settings(host=host, port=port)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    def print_banner(state: State) -> None:
        shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        url = f"http://{shown}:{settings.port}"
        key = state.bootstrap.generated_key or settings.bootstrap_key or "<your API key>"
        typer.echo(f"\nMashpipe is running at {url}  (API docs: {url}/docs)")
        typer.echo(f"API key of the `default` account: {key}")
        typer.echo("Run the `hello` example:")
        typer.echo(
            f"  curl -s -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' "
            f'-d \'{{"inputs": {{"name": "Ada"}}, "wait": true}}\' {url}/v1/pipelines/hello/runs\n'
        )

    def ready(state: State) -> None:
        # Everything made at start-up (FastAPI, SQLAlchemy, pydantic, connectors, plans) lives as long
        # as the server: moved out of the collector's generations, it is no longer traversed by every
        # collection. A request allocates thousands of short-lived containers (the JSON of the runs
        # in flight): a larger first generation lets them die young instead of being promoted and
        # traversed again. Measured under load: ~20% (freeze) and ~14% (thresholds) less CPU per
        # uncached published-endpoint answer (bench/README.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        if banner:
            print_banner(state)

    app = create_app(settings, on_ready=ready)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        # Forwarded headers only from the proxies the operator names (uvicorn would trust 127.0.0.1).
        proxy_headers=bool(settings.forwarded_allow_ips.strip()),
        forwarded_allow_ips=settings.forwarded_allow_ips.strip() or None,
    )


# -- validate -------------------------------------------------------------------------------------


@cli.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Pipeline files", show_default=False)],
) -> None:
    """Check pipeline files: every problem as FILE:LINE:COL: message [code]; exit 1 when any."""
    from app.runtime.pipelines import validate_problems

    settings = _settings()
    registry = _registry(settings)
    failed = False
    for path in files:
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            typer.echo(f"{path}: cannot read: {exc}")
            failed = True
            continue
        spec, problems = validate_problems(source, registry, max_bytes=settings.max_yaml_bytes)
        if spec is None:
            failed = True
            for p in problems:
                typer.echo(f"{path}:{p['line']}:{p['column']}: {p['message']} [{p['code']}]")
        else:
            typer.echo(f"{path}: ok")
    if failed:
        raise typer.Exit(1)


# -- run ------------------------------------------------------------------------------------------


def parse_inputs(pairs: list[str], json_inputs: str | None) -> tuple[dict[str, Any], bool]:
    """``--json-inputs`` merged with ``--input k=v`` (which win); True when strings were given."""
    given: dict[str, Any] = {}
    if json_inputs:
        try:
            decoded = json.loads(json_inputs)
        except json.JSONDecodeError as exc:
            raise _fail(f"--json-inputs is not valid JSON: {exc.msg} (column {exc.colno})", 2) from None
        if not isinstance(decoded, dict):
            raise _fail("--json-inputs must be a JSON object", 2)
        given.update(decoded)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise _fail(f"--input expects NAME=VALUE, got {pair!r}", 2)
        given[name.strip()] = value
    return given, bool(pairs)


@cli.command()
def run(
    file: Annotated[Path, typer.Argument(help="The pipeline file")],
    inputs: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="An input as NAME=VALUE (repeatable)")
    ] = None,
    json_inputs: Annotated[str | None, typer.Option(help="Inputs as a JSON object")] = None,
) -> None:
    """Run a pipeline here, without server or database: step progress on stderr, outputs as JSON on
    stdout; exit 1 when the run fails. The secret NAME is read from the environment variable
    MASHPIPE_SECRET_NAME (masked in what is printed)."""
    import os

    from app.engine.types import RunStatus
    from app.pipelines.inputs import coerce_inputs
    from app.runtime.local import SECRET_PREFIX, ConsoleObserver, run_locally, secrets_from_environment
    from app.runtime.pipelines import validate_problems

    settings = _settings()
    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot read {file}: {exc}") from None
    registry = _registry(settings)
    spec, problems = validate_problems(source, registry, max_bytes=settings.max_yaml_bytes)
    if spec is None:
        for p in problems:
            typer.echo(f"{file}:{p['line']}:{p['column']}: {p['message']} [{p['code']}]", err=True)
        raise typer.Exit(1)
    given, from_strings = parse_inputs(inputs or [], json_inputs)
    try:
        coerced = coerce_inputs(spec, given, from_strings=from_strings)
    except Unprocessable as exc:
        typer.echo(f"error: {exc.message}", err=True)
        for detail in exc.details or []:
            typer.echo(f"  input {detail.get('input')}: {detail.get('message')}", err=True)
        raise typer.Exit(1) from None

    secrets, missing = secrets_from_environment(spec, os.environ)
    if missing:
        names = ", ".join(SECRET_PREFIX + name for name in missing)
        raise _fail(f"the pipeline reads secrets that are not set: set {names} in the environment")

    def write(line: str) -> None:
        typer.echo(line, err=True)

    typer.echo(f"running {spec.name} ({len(spec.steps)} steps)", err=True)
    try:
        result = asyncio.run(
            run_locally(spec, coerced, settings, registry, observer=ConsoleObserver(write), secrets=secrets)
        )
    except MashpipeError as exc:
        raise _fail(exc.message) from None
    typer.echo(f"run {result.status}", err=True)
    if result.outputs is not None:
        typer.echo(json.dumps(result.outputs, indent=2, ensure_ascii=False, default=str))
    if result.status != RunStatus.SUCCEEDED:
        if result.error is not None:
            typer.echo(f"error: {result.error.message} [{result.error.code}]", err=True)
        for step_id, step in result.steps.items():
            if step.error is not None and step.status == "failed":
                typer.echo(f"  step {step_id} failed: {step.error.message} [{step.error.code}]", err=True)
        raise typer.Exit(1)


# -- accounts -------------------------------------------------------------------------------------


@accounts_cli.command("create")
def accounts_create(name: Annotated[str, typer.Argument(help="The new account's name")]) -> None:
    """Create an account and print its API key (shown only this once)."""
    from app.runtime.bootstrap import create_account
    from app.security.keys import load_secret_key
    from app.storage.db import Database

    settings = _settings()

    async def create() -> str:
        db = Database(settings.database_url)
        try:
            await db.upgrade()
            _, key = await create_account(db, load_secret_key(settings), name)
            return key
        finally:
            await db.dispose()

    try:
        key = asyncio.run(create())
    except MashpipeError as exc:
        raise _fail(exc.message) from None
    typer.echo(f"created account {name!r}; its API key (shown only this once):", err=True)
    typer.echo(key)


# -- openapi --------------------------------------------------------------------------------------


def openapi_documents() -> dict[str, Any]:
    """The generated documents by file name: the OpenAPI document and the pipeline JSON Schema."""
    from app.main import create_app
    from app.pipelines.schema import pipeline_json_schema

    return {OPENAPI_FILE: create_app(Settings()).openapi(), PIPELINE_SCHEMA_FILE: pipeline_json_schema()}


def dump_document(document: Any) -> str:
    """How a generated document is written (stable, diff-friendly)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


@cli.command()
def openapi(
    check: Annotated[bool, typer.Option(help="Exit 1 when the committed files differ")] = False,
    directory: Annotated[Path, typer.Option("--dir", help="Where the documents live")] = Path("openapi"),
) -> None:
    """Write openapi/openapi.json and openapi/pipeline.schema.json (or, with --check, compare)."""
    from app.pipelines.schema import write_schema

    documents = openapi_documents()
    if check:
        drifted = []
        for name, document in documents.items():
            path = directory / name
            try:
                committed = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                committed = None
            if committed != document:
                drifted.append(str(path))
        if drifted:
            typer.echo(f"out of date: {', '.join(drifted)}; run `mashpipe openapi`", err=True)
            raise typer.Exit(1)
        typer.echo("openapi documents are up to date")
        return
    directory.mkdir(parents=True, exist_ok=True)
    (directory / OPENAPI_FILE).write_text(dump_document(documents[OPENAPI_FILE]), encoding="utf-8")
    write_schema(directory / PIPELINE_SCHEMA_FILE)
    typer.echo(f"wrote {directory / OPENAPI_FILE} and {directory / PIPELINE_SCHEMA_FILE}")


def main() -> None:
    """Console script entry point."""
    cli()


if __name__ == "__main__":
    main()
