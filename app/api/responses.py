"""Documented error responses for the OpenAPI document, all of the one :class:`ErrorResponse` shape."""

from __future__ import annotations

from typing import Any

from app.schemas.base import ErrorResponse

DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request (bad JSON, bad cursor...)",
    401: "Missing, unknown, revoked or expired API key",
    404: "No such resource in this account",
    409: "Conflict with the current state",
    413: "Request body too large",
    415: "Unsupported content type",
    422: "The request does not validate (details list every problem)",
    429: "Too many requests (per API key, or per client on public endpoints); see Retry-After",
    503: "The service is not ready",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for the given statuses."""
    return {status: {"model": ErrorResponse, "description": DESCRIPTIONS[status]} for status in statuses}
