"""The Mashpipe connector SDK: everything a connector imports, and nothing else from ``app``.

::

    from pydantic import BaseModel, Field
    from app.sdk import BearerToken, Connector, Context, LinkHeader

    example = Connector(key="example", version="1.0.0", title="Example", description="...",
                        base_url="https://api.example.com", auth=[BearerToken()])

    class Repo(BaseModel):
        name: str = Field(description="Repository name")

    @example.action(title="List items")
    async def list_items(ctx: Context, params: Repo) -> list[dict[str, object]]:
        \"\"\"Every item of a repository.\"\"\"
        return [item async for item in ctx.paginate(f"/repos/{params.name}/items", strategy=LinkHeader())]

See ``shared/docs/connectors.md`` and ``docs/`` for the author's guide; ``app.sdk.testing`` runs an
operation in tests with the same client stack as the server.
"""

from app.errors import EgressDenied, StepError, StepTimeout
from app.sdk.auth import (
    ApiKey,
    AuthKind,
    BasicAuth,
    BearerToken,
    CredentialField,
    NoAuth,
    OAuth2,
    PathToken,
    WebhookUrl,
)
from app.sdk.cache import HttpCache, from_cache
from app.sdk.connector import Connector, Operation, Poll
from app.sdk.context import Context, StepLog, decode_json
from app.sdk.errors import (
    AuthFailed,
    ConnectionFailed,
    ConnectorDefinitionError,
    InvalidResponse,
    NotFound,
    RateLimited,
    UpstreamError,
    parse_retry_after,
    raise_for_response,
)
from app.sdk.http import ConnectorHTTP, build_http_client
from app.sdk.pagination import (
    CursorInBody,
    LinkHeader,
    Offset,
    PageNumber,
    PageRequest,
    Pagination,
    get_path,
)
from app.sdk.ratelimit import RateLimit
from app.sdk.raw import HttpResponse, RequestOptions, response_output
from app.sdk.retries import RetryPolicy
from app.sdk.webhooks import (
    HmacSha256,
    WebhookPayloadInvalid,
    WebhookRequest,
    WebhookSignatureInvalid,
    WebhookVerifier,
    verify_hmac_sha256,
)

__all__ = [
    "ApiKey",
    "AuthFailed",
    "AuthKind",
    "BasicAuth",
    "BearerToken",
    "ConnectionFailed",
    "Connector",
    "ConnectorDefinitionError",
    "ConnectorHTTP",
    "Context",
    "CredentialField",
    "CursorInBody",
    "EgressDenied",
    "HmacSha256",
    "HttpCache",
    "HttpResponse",
    "InvalidResponse",
    "LinkHeader",
    "NoAuth",
    "NotFound",
    "OAuth2",
    "Offset",
    "Operation",
    "PageNumber",
    "PageRequest",
    "Pagination",
    "PathToken",
    "Poll",
    "RateLimit",
    "RateLimited",
    "RequestOptions",
    "RetryPolicy",
    "StepError",
    "StepLog",
    "StepTimeout",
    "UpstreamError",
    "WebhookPayloadInvalid",
    "WebhookRequest",
    "WebhookSignatureInvalid",
    "WebhookUrl",
    "WebhookVerifier",
    "build_http_client",
    "decode_json",
    "from_cache",
    "get_path",
    "parse_retry_after",
    "raise_for_response",
    "response_output",
    "verify_hmac_sha256",
]
