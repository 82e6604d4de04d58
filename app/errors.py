"""One error tree for Mashpipe. Every error carries its HTTP status and a stable code.

::

    MashpipeError (500 internal_error)
    ├── BadRequest (400 bad_request)
    │   └── PayloadTooLarge (413 payload_too_large)
    ├── Unauthorized (401 unauthorized)
    ├── Forbidden (403 forbidden)
    ├── NotFound (404 not_found)
    ├── Conflict (409 conflict)
    ├── Unprocessable (422 validation_failed)
    │   └── PipelineInvalid (422 pipeline_invalid)   details: [{line, column, path, code, message}]
    ├── RateLimited (429 rate_limited)
    └── StepError (500 step_failed)                  raised inside a run, recorded on the step
        ├── ExpressionError (expression_error)
        ├── EgressDenied (egress_denied)
        ├── UpstreamError (upstream_error)           retryable for 429 / 5xx
        └── StepTimeout (timeout)

The API turns any of them into ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MashpipeError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(MashpipeError):
    status = 400
    code = "bad_request"


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"


class Unauthorized(MashpipeError):
    status = 401
    code = "unauthorized"


class Forbidden(MashpipeError):
    status = 403
    code = "forbidden"


class NotFound(MashpipeError):
    status = 404
    code = "not_found"


class Conflict(MashpipeError):
    status = 409
    code = "conflict"


class Unprocessable(MashpipeError):
    status = 422
    code = "validation_failed"


class PipelineInvalid(Unprocessable):
    code = "pipeline_invalid"


class RateLimited(MashpipeError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class StepError(MashpipeError):
    """An error inside a step. ``retryable`` tells the engine whether a retry may help."""

    code = "step_failed"
    retry_kind: ClassVar[str | None] = None  # one of: timeout, http_429, http_5xx, connection

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        code: str | None = None,
        retry_kind: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, details=details, code=code)
        if retry_kind is not None:
            self.retry_kind = retry_kind  # type: ignore[misc]
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.retry_kind is not None


class ExpressionError(StepError):
    code = "expression_error"


class EgressDenied(StepError):
    code = "egress_denied"


class UpstreamError(StepError):
    code = "upstream_error"


class StepTimeout(StepError):
    code = "timeout"
    retry_kind = "timeout"
