"""The HTTP edge: parse, authorize, call down, return a schema. No SQL and no httpx here.

:data:`api_router` gathers every ``/v1`` router.
"""

from fastapi import APIRouter

from app.api import apps, connections, connectors, hooks, keys, meta, pipelines, runs, secrets

api_router = APIRouter(prefix="/v1")
# The public hot paths first: a request is matched against the routes in order.
api_router.include_router(apps.router)
api_router.include_router(hooks.router)
api_router.include_router(pipelines.router)
api_router.include_router(runs.router)
api_router.include_router(connectors.router)
api_router.include_router(keys.router)
api_router.include_router(secrets.router)
api_router.include_router(connections.router)
api_router.include_router(meta.router)

__all__ = ["api_router"]
