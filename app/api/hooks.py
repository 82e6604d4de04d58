"""`POST /v1/hooks/{hook_id}`: a webhook call starts a run. No API key: the hook id is the credential.

The raw body is read (up to ``webhook_max_body_bytes``, else 413) and handed with the headers and the
query to :meth:`app.runtime.webhooks.WebhookService.deliver`, which checks the signature and records
the run. Answers: 202 ``{run_id}``; 200 ``{run_id, duplicate: true}`` for a redelivery; with
``?wait=true`` 200 ``{run_id, status, outputs}`` once the run succeeded (502 when it failed, 202 when
it is still going after ``run_wait_max_seconds``).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response, status

from app.api.deps import get_state
from app.api.responses import DESCRIPTIONS
from app.errors import PayloadTooLarge
from app.runtime.endpoints import run_failed
from app.runtime.service import RunService
from app.runtime.webhooks import Delivery, DeliveryOutcome
from app.schemas.base import ErrorResponse
from app.schemas.hooks import HookAccepted, HookResult
from app.storage.models_hooks import HOOK_ID_LENGTH

router = APIRouter(tags=["hooks"])

HookId = Annotated[
    str, Path(description="The hook's id, from the pipeline's `hooks`", max_length=HOOK_ID_LENGTH)
]


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": description}
    for code, description in {
        400: "The body is not what its content type says (e.g. malformed JSON)",
        401: "The signature is missing or wrong (nothing was started)",
        404: "No such hook (or its pipeline no longer has that webhook trigger)",
        413: DESCRIPTIONS[413],
        422: "The pipeline has required inputs without defaults",
        502: "With `wait=true`: the run failed",
    }.items()
}

BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "Any body: JSON and forms are decoded into `trigger.body`, anything else is text",
        "content": {
            "application/json": {"schema": {}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 past ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the webhook body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the webhook body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(status_code: int, content: dict[str, Any]) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


async def _waited(runs: RunService, outcome: DeliveryOutcome, max_seconds: float) -> Response:
    finished = await runs.wait_outcome(outcome.run_id, max_seconds, started_here=not outcome.duplicate)
    if finished is None:
        return _json(status.HTTP_202_ACCEPTED, {"run_id": outcome.run_id, "duplicate": outcome.duplicate})
    if finished.status != "succeeded":
        raise run_failed(outcome.run_id, finished)
    result = HookResult(
        run_id=outcome.run_id, duplicate=outcome.duplicate, status=finished.status, outputs=finished.outputs
    )
    return _json(status.HTTP_200_OK, result.model_dump(mode="json"))


@router.post(
    "/hooks/{hook_id}",
    operation_id="deliverWebhook",
    summary="Call a pipeline's webhook",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=HookAccepted,
    response_class=Response,
    responses={
        200: {
            "model": HookResult,
            "description": "A redelivery (`duplicate`), or the run's outputs (`wait`)",
        },
        202: {"model": HookAccepted, "description": "The run is queued"},
        **_ERRORS,
    },
    openapi_extra=BODY,
)
async def deliver(
    hook_id: HookId,
    request: Request,
    wait: Annotated[bool, Query(description="Answer when the run is finished, with its outputs")] = False,
) -> Response:
    """Start a run with `trigger.body`, `trigger.headers` (lower-case names, without Authorization and
    Cookie) and `trigger.query`. A `verify` block of the trigger checks the signature over the raw
    body (401 otherwise, nothing started); a repeated `dedupe_header` value starts nothing and answers
    200 with the first run's id."""
    state = await get_state(request)  # a hot path: no dependencies to solve
    settings = state.settings
    raw = await read_body(request, settings.webhook_max_body_bytes)
    delivery = Delivery(
        raw=raw,
        headers=[
            (name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in request.headers.raw
        ],
        query=request.query_params.multi_items(),
    )
    outcome = await state.hooks.deliver(hook_id, delivery)
    if wait:
        return await _waited(state.runs, outcome, settings.run_wait_max_seconds)
    code = status.HTTP_200_OK if outcome.duplicate else status.HTTP_202_ACCEPTED
    body: dict[str, Any] = {"run_id": outcome.run_id, "duplicate": outcome.duplicate}
    return _json(code, body)
