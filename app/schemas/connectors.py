"""API models of installed connectors, from the registry's metadata.

They ignore keys they do not know, so the registry may add metadata without breaking the API.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from app.schemas.base import APIModel


class _RegistryModel(APIModel):
    model_config = ConfigDict(extra="ignore")


class OperationRead(_RegistryModel):
    """One operation of a connector: an action (the raw `request` included) or a polling trigger."""

    name: str
    uses: str = Field(description="What a step (or a poll trigger) writes in `uses`: `CONNECTOR.OPERATION`")
    kind: str = Field(description="`action` or `poll`")
    title: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] = Field(description="JSON Schema of `with`")
    output_schema: dict[str, Any] | None = Field(default=None, description="JSON Schema of the output")
    cursor_schema: dict[str, Any] | None = Field(default=None, description="Polls: JSON Schema of the cursor")


class ConnectorSummary(_RegistryModel):
    """An installed connector."""

    key: str
    version: str
    title: str
    description: str | None = None
    auth_kinds: list[str] = Field(default_factory=list, description="Auth kinds the connector accepts")
    operations: list[str] = Field(default_factory=list, description="Names of its actions")
    polls: list[str] = Field(default_factory=list, description="Names of its polling triggers")


class ConnectorRead(_RegistryModel):
    """A connector with every operation's JSON Schemas."""

    key: str
    version: str
    title: str
    description: str | None = None
    base_url: str | None = None
    docs_url: str | None = None
    source: str | None = Field(default=None, description="The distribution that provides it")
    auth: list[dict[str, Any]] = Field(default_factory=list, description="Declared auth kinds, with fields")
    auth_kinds: list[str] = Field(default_factory=list)
    rate_limit: dict[str, Any] | None = None
    operations: list[OperationRead] = Field(default_factory=list, description="Actions")
    polls: list[OperationRead] = Field(default_factory=list, description="Polling triggers")
