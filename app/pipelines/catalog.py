"""What validation needs to know about operations, without importing the connector registry."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel


class OperationCatalog(Protocol):
    """Implemented by ``app.registry.Registry`` (and by small fakes in tests).

    Optionally, a ``keys()`` method listing the installed connector keys lets validation suggest
    the closest one for a misspelt connector.
    """

    def has_connector(self, key: str) -> bool:
        """Whether a connector with this key is installed and allowed."""
        ...

    def operation_names(self, key: str) -> list[str]:
        """The operation names (actions, ``request``) of an installed connector."""
        ...

    def input_model(self, uses: str) -> type[BaseModel] | None:
        """The pydantic input model of ``CONNECTOR.OPERATION``, or None when there is no such operation."""
        ...

    def poll_names(self, key: str) -> list[str]:
        """The polling triggers of an installed connector."""
        ...

    def poll_input_model(self, uses: str) -> type[BaseModel] | None:
        """The pydantic input model of the polling trigger ``CONNECTOR.TRIGGER``, or None."""
        ...
