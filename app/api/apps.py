"""`GET /v1/apps/{account}/{name}?input=value`: a published pipeline (the mashup as an API).

The query string gives the inputs (validated and coerced, 422 with every problem); the answer is the
run's `outputs` as JSON, RSS 2.0 or CSV (the endpoint trigger's `format`). A `public: false` endpoint
needs an API key of the owning account. Each answer carries a strong `ETag` (`If-None-Match` → 304) and
a `Cache-Control`: `public, max-age=<seconds left>` for a cached endpoint (`private, ...` when it is
not public), `no-cache` (revalidate with the ETag) for one without `cache`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from app.api.deps import StateDep, bearer_scheme, get_account, get_state
from app.errors import NotFound
from app.runtime.endpoints import NOT_PUBLISHED, EndpointService, Published, Served, etag_matches
from app.runtime.state import State
from app.schemas.base import ErrorResponse

router = APIRouter(tags=["apps"])

AccountName = Annotated[
    str, Path(description="The name of the account publishing the pipeline", max_length=100)
]
PipelineName = Annotated[str, Path(description="The pipeline's name", max_length=100)]


async def get_endpoints(state: StateDep) -> EndpointService:
    return state.endpoints


def public_base_url(request: Request) -> str:
    """The server's external base URL: ``MASHPIPE_PUBLIC_URL`` when set, else the request's."""
    state = getattr(request.app.state, "mashpipe", None)
    configured = state.settings.public_url if isinstance(state, State) else None
    return (configured or str(request.base_url)).strip().rstrip("/")


def forget_published(request: Request, account_name: str, pipeline_name: str, pipeline_id: str) -> None:
    """After a pipeline is saved or deleted: its endpoint and hooks look it up again at once."""
    state = getattr(request.app.state, "mashpipe", None)
    if isinstance(state, State):
        state.endpoints.forget(account_name, pipeline_name)
        state.hooks.forget_pipeline(pipeline_id)


EndpointsDep = Annotated[EndpointService, Depends(get_endpoints)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": description}
    for code, description in {
        401: "The endpoint is not public and no valid API key was given",
        404: "No such account or pipeline, or the pipeline is not published (no `endpoint` trigger)",
        422: "The query string does not fit the pipeline's inputs (details list every problem)",
        502: "The run failed, or its outputs cannot be served in the endpoint's format",
        504: "The run did not finish in time (it goes on)",
    }.items()
}
_OK: dict[str, Any] = {
    "description": "The run's outputs, in the endpoint's format",
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/rss+xml": {"schema": {"type": "string"}},
        "text/csv": {"schema": {"type": "string"}},
    },
    "headers": {
        "ETag": {"description": "Hash of the body", "schema": {"type": "string"}},
        "Cache-Control": {"description": "How long the answer may be reused", "schema": {"type": "string"}},
    },
}


async def _authorize(
    state: State, credentials: HTTPAuthorizationCredentials | None, published: Published
) -> None:
    """A private endpoint: 401 without a valid key, 404 with another account's key (nothing is revealed)."""
    async with state.db.session() as session:
        account = await get_account(state, session, credentials)
    if account.id != published.account_id:
        raise NotFound(NOT_PUBLISHED)


def _cache_control(published: Published, served: Served) -> str:
    scope = "public" if published.endpoint.public else "private"
    if served.max_age is None:
        return "no-cache" if published.endpoint.public else "private, no-cache"
    return f"{scope}, max-age={served.max_age}"


def answer_headers(published: Published, served: Served) -> dict[str, str]:
    """The headers of an answer (200 or 304): ETag, Cache-Control, the run, cache hit or miss."""
    rendered = served.rendered
    headers = {
        "ETag": rendered.etag,
        "Cache-Control": _cache_control(published, served),
        "X-Mashpipe-Run": rendered.run_id,
        "X-Cache": "hit" if served.hit else "miss",
    }
    if not published.endpoint.public:
        headers["Vary"] = "Authorization"
    return headers


@router.get(
    "/apps/{account}/{name}",
    operation_id="getApp",
    summary="Call a published pipeline",
    response_class=Response,
    responses={200: _OK, 304: {"description": "Not modified (`If-None-Match` matched the ETag)"}, **_ERRORS},
    openapi_extra={"security": [{"ApiKey": []}]},  # only for `public: false` endpoints (read by hand below)
)
async def serve_app(account: AccountName, name: PipelineName, request: Request) -> Response:
    """Run the pipeline with the query string as its inputs (or serve the cached answer) and answer with
    its `outputs` as JSON, RSS 2.0 or CSV. No API key needed unless the endpoint says `public: false`."""
    # The hot path of a published mashup: no dependencies to solve, the state is read directly.
    state = await get_state(request)
    endpoints = state.endpoints
    published = await endpoints.find(account, name)
    if not published.endpoint.public:
        await _authorize(state, await bearer_scheme(request), published)
    query = request.query_params.multi_items()
    inputs = endpoints.inputs(published, query)
    link = ""
    if published.endpoint.format == "rss":  # only RSS names its own URL (the channel's link)
        link = (
            public_base_url(request)
            + request.url.path
            + (f"?{request.url.query}" if request.url.query else "")
        )
    served = await endpoints.serve(published, inputs, query=dict(query), link=link)
    rendered = served.rendered
    headers = answer_headers(published, served)
    if etag_matches(request.headers.get("if-none-match"), rendered.etag):
        return Response(status_code=304, headers=headers)
    return Response(rendered.body, media_type=rendered.media_type, headers=headers)
