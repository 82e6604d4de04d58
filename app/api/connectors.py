"""`/v1/connectors`: the installed connectors and their operations' JSON Schemas."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from app.api.deps import AccountDep, RegistryDep
from app.api.responses import errors
from app.errors import NotFound
from app.schemas.base import Page
from app.schemas.connectors import ConnectorRead, ConnectorSummary

router = APIRouter(tags=["connectors"])


@router.get(
    "/connectors",
    operation_id="listConnectors",
    summary="List installed connectors",
    response_model=Page[ConnectorSummary],
    responses=errors(401),
)
async def list_connectors(account: AccountDep, registry: RegistryDep) -> Page[ConnectorSummary]:
    """Every installed (and allowed) connector, by key."""
    items = [ConnectorSummary.model_validate(entry) for entry in registry.summary()]
    return Page[ConnectorSummary](items=items, total=len(items))


@router.get(
    "/connectors/{key}",
    operation_id="getConnector",
    summary="Read a connector",
    response_model=ConnectorRead,
    responses=errors(401, 404, 422),
)
async def get_connector(
    key: Annotated[str, Path(description="The connector's key", max_length=64)],
    account: AccountDep,
    registry: RegistryDep,
) -> ConnectorRead:
    """The connector's metadata, auth kinds, and each operation with its input and output JSON Schemas."""
    if not registry.has_connector(key):
        raise NotFound(f"no connector {key!r} is installed")
    return ConnectorRead.model_validate(registry.describe(key))
