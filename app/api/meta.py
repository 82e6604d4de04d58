"""Public endpoints (no API key): the health check and the pipeline JSON Schema."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import StateDep
from app.api.responses import errors
from app.errors import MashpipeError
from app.schemas.health import HealthRead

router = APIRouter(tags=["meta"])


class Unavailable(MashpipeError):
    status = 503
    code = "unavailable"


def _version() -> str:
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
async def pipeline_schema() -> JSONResponse:
    """The JSON Schema of pipeline files, for editors (`# yaml-language-server: $schema=...`). No API key
    needed."""
    from app.pipelines.schema import pipeline_json_schema

    schema: dict[str, Any] = pipeline_json_schema()
    return JSONResponse(schema, media_type="application/schema+json")
