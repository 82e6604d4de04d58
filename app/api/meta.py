"""Public endpoints (no API key): the health check and the pipeline JSON Schema."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from app.api.deps import StateDep
from app.api.responses import errors
from app.errors import MashpipeError
from app.pipelines.schema import pipeline_json_schema
from app.runtime.state import State
from app.schemas.health import HealthRead

router = APIRouter(tags=["meta"])


class Unavailable(MashpipeError):
    status = 503
    code = "unavailable"


@functools.cache
def _version() -> str:
    """The installed package's version (read once: the metadata lookup scans the installed packages)."""
    try:
        return version("mashpipe")
    except PackageNotFoundError:
        return "0.0.0+unknown"


@router.get(
    "/health",
    operation_id="health",
    summary="Health check",
    response_model=HealthRead,
    responses=errors(503),
)
async def health(state: StateDep) -> HealthRead:
    """200 when the server is up and its database answers; 503 otherwise. No API key needed."""
    try:
        async with state.db.session() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        raise Unavailable(f"the database does not answer: {type(exc).__name__}") from None
    return HealthRead(version=_version())


@router.get(
    "/schemas/pipeline.json",
    operation_id="getPipelineSchema",
    summary="JSON Schema of the pipeline format",
    response_class=JSONResponse,
    responses={200: {"content": {"application/schema+json": {}}, "description": "A JSON Schema (2020-12)"}},
)
async def pipeline_schema(state: StateDep) -> JSONResponse:
    """The JSON Schema of pipeline files, for editors (`# yaml-language-server: $schema=...`), with the
    `with` blocks of the built-in steps and of the installed connectors' operations. No API key needed."""
    schema = state.cache.get("pipeline_schema")
    if schema is None:
        schema = state.cache["pipeline_schema"] = pipeline_json_schema(operations=_operations(state))
    return JSONResponse(schema, media_type="application/schema+json")


def _operations(state: State) -> dict[str, type[BaseModel]]:
    """The input model of every installed connector action, so editors also check `with` blocks."""
    models: dict[str, type[BaseModel]] = {}
    for entry in state.registry.summary():
        for name in entry.get("operations", []):
            uses = f"{entry['key']}.{name}"
            model = state.registry.input_model(uses)
            if model is not None:
                models[uses] = model
    return models
