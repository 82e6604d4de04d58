"""One error shape for the whole API: ``{"error": {"code", "message", "details"}}``.

:func:`install_error_handlers` maps, onto that shape, the Mashpipe error tree (``app.errors``), the
HTTP errors raised by routing (404 unknown route, 405, 413 from the body limit...), request validation
errors (422; malformed JSON is a 400) and any unexpected exception (500, logged, no traceback leaked).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import MashpipeError, RateLimited, Unauthorized

logger = logging.getLogger("mashpipe.api")

HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class UnsupportedMediaType(MashpipeError):
    """The request body has a content type this endpoint does not read."""

    status = 415
    code = "unsupported_media_type"


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON error answer every handler returns."""
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _mashpipe_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MashpipeError)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    status = answer_status(exc, request.method, request.url.path)
    return error_response(status, exc.code, exc.message, exc.details, headers or None)


def answer_status(exc: MashpipeError, method: str, path: str) -> int:
    """The HTTP status answering ``exc`` (500 for one outside 4xx/5xx); a 5xx is logged."""
    status = exc.status if 400 <= exc.status < 600 else 500
    if status >= 500:
        logger.error("%s %s failed: %s", method, path, exc.message)
    return status


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    try:
        default_phrase = HTTPStatus(status).phrase
    except ValueError:
        default_phrase = "Error"
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else default_phrase
    if status == 404 and message == default_phrase:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif status == 405 and message == default_phrase:
        message = f"method {request.method} is not allowed on {request.url.path}"
    code = HTTP_CODES.get(status, "http_error")
    return error_response(status, code, message, None, dict(exc.headers) if exc.headers else None)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = [part for part in err.get("loc", ()) if isinstance(part, str | int)]
        details.append({"loc": loc, "message": str(err.get("msg", "")), "type": str(err.get("type", ""))})
    return details


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc)
    if any(detail["type"] == "json_invalid" for detail in details):
        return error_response(400, "bad_request", "the request body is not valid JSON", details)
    summary = "; ".join(
        f"{'.'.join(str(p) for p in d['loc']) or 'request'}: {d['message']}" for d in details[:5]
    )
    return error_response(422, "validation_failed", f"invalid request: {summary}", details)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s raised an unexpected error", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error answer the one shape."""
    app.add_exception_handler(MashpipeError, _mashpipe_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
