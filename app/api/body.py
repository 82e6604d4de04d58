"""Reading a pipeline source from a request: raw YAML, or JSON ``{"source": "..."}``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from app.api.errors import UnsupportedMediaType
from app.errors import BadRequest, Unprocessable
from app.schemas.pipelines import PipelineCreate

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"})
JSON_TYPES = frozenset({"application/json"})

_YAML_CONTENT = {"schema": {"type": "string", "description": "The pipeline file, YAML text"}}

PIPELINE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The pipeline file as raw YAML (`application/yaml`, `text/yaml`), or JSON "
        '`{"source": "<yaml text>"}`',
        "content": {
            "application/yaml": _YAML_CONTENT,
            "text/yaml": _YAML_CONTENT,
            "application/json": {"schema": PipelineCreate.model_json_schema()},
        },
    }
}
"""``openapi_extra`` for endpoints reading a pipeline source (the body is read by hand, see below)."""


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_pipeline_source(request: Request) -> str:
    """The pipeline source of the request body.

    ``415`` for other content types, ``400`` for bytes that are not UTF-8 or malformed JSON, ``422``
    for a JSON body that is not ``{"source": "..."}``.
    """
    media_type = _media_type(request)
    if media_type not in YAML_TYPES and media_type not in JSON_TYPES and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the pipeline as application/yaml (or text/yaml) or as application/json "
            f'{{"source": "..."}}; got {media_type or "no Content-Type"}'
        )
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the request body is not UTF-8 text (byte {exc.start})") from None
    if media_type in YAML_TYPES:
        return text.removeprefix("\ufeff")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"the request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    try:
        return PipelineCreate.model_validate(data).source
    except ValidationError as exc:
        details = [
            {"loc": ["body", *err["loc"]], "message": err["msg"], "type": err["type"]} for err in exc.errors()
        ]
        raise Unprocessable('expected a JSON object {"source": "<pipeline YAML>"}', details=details) from None
