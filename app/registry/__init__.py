"""Connector discovery and metadata: :class:`Registry` (``Registry.load(settings)``) and its errors."""

from app.registry.registry import ENTRY_POINT_GROUP, Registered, Registry, RegistryError

__all__ = ["ENTRY_POINT_GROUP", "Registered", "Registry", "RegistryError"]
