"""API models of installed connectors, from the registry."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.schemas.base import APIModel


class OperationRead(APIModel):
    """One operation of a connector (an action, the raw `request`, or a polling trigger)."""

    name: str
    uses: str = Field(description="What a step writes in `uses`, `CONNECTOR.OPERATION`")
    kind: str = Field(description="action, request or poll")
    title: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] = Field(description="JSON Schema of `with`")
    output_schema: dict[str, Any] | None = Field(default=None, description="JSON Schema of the output")


class ConnectorSummary(APIModel):
    """An installed connector."""

    key: str
    version: str
    title: str
    description: str | None = None
    auth: list[str] = Field(default_factory=list, description="Auth kinds the connector accepts")
    operations: list[str] = Field(default_factory=list, description="Operation names")


class ConnectorRead(APIModel):
    """A connector with every operation's JSON Schemas."""

    key: str
    version: str
    title: str
    description: str | None = None
    auth: list[dict[str, Any]] = Field(default_factory=list, description="Declared auth kinds")
    docs_url: str | None = None
    operations: list[OperationRead]
