"""The error cases every HTTP connector operation is tested against, in one place.

Usage, in a connector's test module::

    @pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.name)
    async def test_list_issues_errors(case):
        await check_error_case(case, github, "list_issues", {"owner": "o", "repo": "r"},
                               "GET", "https://api.github.com/repos/o/r/issues", credentials=TOKEN)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import respx

from app.errors import StepError
from app.sdk import AuthFailed, Connector, InvalidResponse, NotFound, RateLimited, UpstreamError
from app.sdk.testing import run_action


@dataclass(frozen=True)
class ErrorCase:
    name: str
    status: int
    error: type[StepError]
    retry_kind: str | None
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes = b'{"error": "something went wrong"}'
    retry_after: float | None = None


ERROR_CASES = [
    ErrorCase("unauthorized", 401, AuthFailed, None, content=b'{"message": "Bad credentials"}'),
    ErrorCase("not_found", 404, NotFound, None, content=b'{"message": "Not Found"}'),
    ErrorCase("rate_limited", 429, RateLimited, "http_429", headers={"Retry-After": "7"}, retry_after=7.0),
    ErrorCase("server_error", 503, UpstreamError, "http_5xx", content=b"<html>Service Unavailable</html>"),
    ErrorCase("malformed_body", 200, InvalidResponse, None, content=b'{"truncated": [1, 2'),
]


async def check_error_case(
    case: ErrorCase,
    connector: Connector,
    operation: str,
    params: Mapping[str, Any],
    method: str,
    url: str,
    *,
    credentials: Mapping[str, Any] | None = None,
    **run_kwargs: Any,
) -> StepError:
    """Mock ``method url`` to answer ``case`` and check the operation fails with the right typed error."""
    headers = {"Content-Type": "application/json", **case.headers}
    with respx.mock(assert_all_called=True) as mock:
        mock.request(method, url).mock(
            return_value=httpx.Response(case.status, headers=headers, content=case.content)
        )
        with pytest.raises(case.error) as raised:
            await run_action(connector, operation, params, credentials=credentials, **run_kwargs)
    error = raised.value
    assert error.retry_kind == case.retry_kind, f"{case.name}: retry_kind {error.retry_kind!r}"
    if case.retry_after is not None:
        assert error.retry_after == case.retry_after
    assert error.message, f"{case.name}: the step error has no message"
    return error
