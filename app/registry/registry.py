"""The connector registry: finds connectors through entry points, checks them, serves their schemas.

Built-in connectors (``connectors/``) and third-party packages are found the same way: entry points
of the group ``mashpipe.connectors`` (``http = "connectors.http:connector"``). At start-up the
registry refuses, with the distribution named, an entry point that fails to import, an object that
is not a :class:`~app.sdk.Connector`, an entry point name that differs from the connector's key, and
two connectors with the same key. ``MASHPIPE_CONNECTORS`` (``settings.connector_allowlist``) keeps
only the listed keys; other entry points are not even imported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from importlib.metadata import EntryPoint
from typing import Any

from pydantic import BaseModel

from app.errors import MashpipeError, NotFound
from app.sdk.connector import Connector, Operation

ENTRY_POINT_GROUP = "mashpipe.connectors"


class RegistryError(MashpipeError):
    """A connector could not be registered (bad object, duplicate key, import failure...)."""

    code = "registry_error"


@dataclass(frozen=True, slots=True)
class Registered:
    """A connector and where it came from (``"mashpipe 0.1.0"``, or ``"(in code)"`` for tests)."""

    connector: Connector
    source: str


def _distribution_of(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "an unknown distribution"
    name = dist.metadata["Name"] if dist.metadata is not None else None
    return f"distribution {name or '?'} {dist.version}"


class Registry:
    """The installed (and allowed) connectors, by key. Implements ``OperationCatalog``."""

    def __init__(self, registered: Iterable[Registered] = ()) -> None:
        self._items: dict[str, Registered] = {}
        for item in registered:
            self._add(item)

    def _add(self, item: Registered) -> None:
        key = item.connector.key
        existing = self._items.get(key)
        if existing is not None:
            raise RegistryError(
                f"connector key {key!r} is provided twice: by {existing.source} and by {item.source}",
                details={"key": key, "sources": [existing.source, item.source]},
            )
        self._items[key] = item

    # -- building --------------------------------------------------------------------------------

    @classmethod
    def from_connectors(cls, connectors: Iterable[Connector]) -> Registry:
        """A registry of the given connectors (tests, embedding); duplicates and non-connectors refused."""
        items = []
        for obj in connectors:
            if not isinstance(obj, Connector):
                raise RegistryError(f"{obj!r} is a {type(obj).__name__}, not a mashpipe Connector")
            items.append(Registered(obj, "(in code)"))
        return cls(items)

    @classmethod
    def load(cls, settings: Any, *, entry_points: Iterable[EntryPoint] | None = None) -> Registry:
        """Discover connectors through the ``mashpipe.connectors`` entry points.

        ``entry_points`` replaces the installed entry points (tests). Honours
        ``settings.connector_allowlist`` (None: every installed connector).
        """
        allow: set[str] | None = getattr(settings, "connector_allowlist", None)
        found = list(metadata.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points)
        registry = cls()
        for ep in found:
            if allow is not None and ep.name not in allow:
                continue
            source = _distribution_of(ep)
            label = f"entry point {ep.name!r} = {ep.value!r} of {source}"
            try:
                obj = ep.load()
            except Exception as exc:  # any import-time failure of a plugin is reported, not raised raw
                raise RegistryError(
                    f"{label} failed to load: {type(exc).__name__}: {exc}",
                    details={"entry_point": ep.name, "source": source},
                ) from exc
            if not isinstance(obj, Connector):
                raise RegistryError(
                    f"{label} is a {type(obj).__name__}, not a mashpipe Connector",
                    details={"entry_point": ep.name, "source": source},
                )
            if obj.key != ep.name:
                raise RegistryError(
                    f"{label} holds connector {obj.key!r}; the entry point must be named after the key",
                    details={"entry_point": ep.name, "source": source},
                )
            registry._add(Registered(obj, source))
        if allow is not None:
            unknown = sorted(allow - set(registry._items))
            if unknown:
                raise RegistryError(
                    f"MASHPIPE_CONNECTORS names connectors that are not installed: {', '.join(unknown)}",
                    details={"unknown": unknown},
                )
        return registry

    # -- reading ---------------------------------------------------------------------------------

    def connectors(self) -> list[Connector]:
        """Every connector, sorted by key."""
        return [self._items[key].connector for key in sorted(self._items)]

    def keys(self) -> list[str]:
        return sorted(self._items)

    def source(self, key: str) -> str:
        """Where the connector ``key`` came from (``"distribution mashpipe 0.1.0"``)."""
        return self._registered(key).source

    def _registered(self, key: str) -> Registered:
        item = self._items.get(key)
        if item is None:
            raise NotFound(f"no connector {key!r} is installed", details={"key": key})
        return item

    def get(self, key: str) -> Connector:
        """The connector ``key``; :class:`app.errors.NotFound` (404) when it is not installed."""
        return self._registered(key).connector

    def find_operation(self, uses: str) -> Operation | None:
        """The operation (action or poll) named ``CONNECTOR.OPERATION``, or None."""
        key, dot, name = uses.partition(".")
        item = self._items.get(key)
        if not dot or item is None:
            return None
        return item.connector.operation(name)

    def operation(self, uses: str) -> Operation:
        """The operation ``CONNECTOR.OPERATION``; :class:`app.errors.NotFound` when unknown."""
        found = self.find_operation(uses)
        if found is None:
            raise NotFound(f"no operation {uses!r} is installed", details={"uses": uses})
        return found

    # -- OperationCatalog --------------------------------------------------------------------------

    def has_connector(self, key: str) -> bool:
        return key in self._items

    def operation_names(self, key: str) -> list[str]:
        item = self._items.get(key)
        return [op.name for op in item.connector.actions()] if item else []

    def input_model(self, uses: str) -> type[BaseModel] | None:
        found = self.find_operation(uses)
        return found.input_model if found is not None and found.kind == "action" else None

    def poll_names(self, key: str) -> list[str]:
        item = self._items.get(key)
        return [op.name for op in item.connector.polls()] if item else []

    def poll_input_model(self, uses: str) -> type[BaseModel] | None:
        found = self.find_operation(uses)
        return found.input_model if found is not None and found.kind == "poll" else None

    def webhook_names(self, key: str) -> list[str]:
        """Names of the connector's webhooks (``[]`` for an unknown connector)."""
        item = self._items.get(key)
        return [op.name for op in item.connector.webhooks()] if item else []

    # -- API metadata --------------------------------------------------------------------------------

    def describe(self, key: str) -> dict[str, Any]:
        """Everything about one connector, JSON-able (``GET /v1/connectors/{key}``); NotFound if unknown."""
        item = self._registered(key)
        data = item.connector.describe()
        data["source"] = item.source
        return data

    def summary(self) -> list[dict[str, Any]]:
        """One short entry per connector (``GET /v1/connectors``), sorted by key."""
        out = []
        for connector in self.connectors():
            out.append(
                {
                    "key": connector.key,
                    "version": connector.version,
                    "title": connector.title,
                    "description": connector.description,
                    "auth_kinds": connector.auth_kinds(),
                    "operations": [op.name for op in connector.actions()],
                    "polls": [op.name for op in connector.polls()],
                    "webhooks": [op.name for op in connector.webhooks()],
                }
            )
        return out

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items
