"""What-if servers: ``mashpipe serve`` with one lever pulled, to measure what each lever is worth.

``python -m bench.endpoint_whatif [--no-record] [--hot-cache] serve`` starts the real server after
patching, in this process only (nothing in ``app`` changes):

* ``--no-record``: a published endpoint executes its plan directly in the request (the compiled
  plan from the plan cache, the same engine, connectors and outbound client) instead of recording
  a run, queueing it and waiting for it. What the run record costs per request, all of it.
* ``--hot-cache``: a cacheable answer (200 with ``Cache-Control: public, max-age=N``) of
  ``GET /v1/apps/...`` is kept by an ASGI wrapper in front of the application and served again
  for the same path and query until it expires, before routing, middleware and the database
  lookup of the pipeline. What a cache hit costs without them.

These are measurements, not features: the no-record server keeps no history, and the hot cache
does not see a pipeline saved meanwhile. The endpoint benchmark runs them in full mode, next to
the real server, and reports them as "what if" lines without targets.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

APPS_PREFIX = "/v1/apps/"


class HotCache:
    """An ASGI wrapper serving fresh cacheable ``GET /v1/apps/...`` answers from memory."""

    def __init__(self, app: ASGIApp, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.clock = clock
        self.entries: dict[tuple[str, bytes], tuple[float, int, list[tuple[bytes, bytes]], bytes]] = {}

    def __getattr__(self, name: str) -> Any:  # uvicorn and tests reach through to the FastAPI app
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not scope["path"].startswith(APPS_PREFIX):
            await self.app(scope, receive, send)
            return
        key = (scope["path"], scope.get("query_string", b""))
        entry = self.entries.get(key)
        now = self.clock()
        if entry is not None and entry[0] > now and not _has_header(scope, b"if-none-match"):
            expires, status, headers, body = entry
            fresh = [(k, v) for k, v in headers if k != b"cache-control"]
            fresh.append((b"cache-control", f"public, max-age={int(expires - now)}".encode()))
            await send({"type": "http.response.start", "status": status, "headers": fresh})
            await send({"type": "http.response.body", "body": body})
            return
        captured: dict[str, Any] = {"body": []}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        max_age = _public_max_age(captured.get("headers", []))
        if captured.get("status") == 200 and max_age:
            body = b"".join(captured["body"])
            self.entries[key] = (now + max_age, 200, captured["headers"], body)


def _has_header(scope: Scope, name: bytes) -> bool:
    return any(key.lower() == name for key, _ in scope.get("headers", []))


def _public_max_age(headers: list[tuple[bytes, bytes]]) -> int:
    for key, value in headers:
        if key.lower() == b"cache-control":
            parts = [part.strip() for part in value.decode("latin-1").split(",")]
            if "public" in parts:
                for part in parts:
                    if part.startswith("max-age="):
                        return int(part.removeprefix("max-age=") or 0)
    return 0


def patch_no_record() -> None:
    """Published endpoints execute their plan in the request; no run is recorded."""
    import uuid

    from app.engine.executor import execute
    from app.engine.types import NullObserver, RunRequest
    from app.runtime import endpoints
    from app.runtime.formats import render
    from app.runtime.plans import revision_key
    from app.runtime.service import RunService

    async def run_directly(
        self: Any, published: Any, inputs: dict[str, Any], query: dict[str, str], link: str
    ) -> Any:
        key = revision_key(published.pipeline_id, published.revision)
        compiled = self._plans.get(key, lambda: published.spec.model_dump(mode="json", by_alias=True))
        request = RunRequest(
            run_id=uuid.uuid4().hex, inputs=inputs, trigger={"kind": "endpoint", "query": query}
        )
        caller = self._runs._caller_for(published.account_id)
        result = await execute(compiled.plan, request, caller=caller, observer=NullObserver(), cancel=None)
        if result.status != "succeeded":
            raise endpoints.RunFailed("the pipeline run failed", details={"status": str(result.status)})
        body, media_type = render(
            published.endpoint.format,
            result.outputs or {},
            title=published.name,
            description=published.spec.description,
            link=link,
        )
        return endpoints.Rendered(body=body, media_type=media_type, etag=endpoints.etag_of(body), run_id="-")

    expected = ["self", "published", "inputs", "query", "link"]
    found = list(inspect.signature(endpoints.EndpointService._run).parameters)
    if found != expected or not hasattr(RunService, "_caller_for"):
        raise SystemExit(
            f"--no-record: EndpointService._run{tuple(found)} changed; update bench/endpoint_whatif.py"
        )
    endpoints.EndpointService._run = run_directly  # type: ignore[method-assign]


def patch_hot_cache() -> None:
    """``create_app`` returns the application wrapped in :class:`HotCache`."""
    import app.main

    create_app = app.main.create_app

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return HotCache(create_app(*args, **kwargs))

    app.main.create_app = wrapped


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="mashpipe serve with a lever pulled (measurements only)")
    parser.add_argument(
        "--no-record", action="store_true", help="endpoints run their plan without a run record"
    )
    parser.add_argument(
        "--hot-cache", action="store_true", help="serve fresh cached app answers before routing"
    )
    args, rest = parser.parse_known_args(argv)
    if args.no_record:
        patch_no_record()
    if args.hot_cache:
        patch_hot_cache()
    from app.cli import main as mashpipe

    sys.argv = ["mashpipe", *rest]
    mashpipe()


if __name__ == "__main__":
    main()
