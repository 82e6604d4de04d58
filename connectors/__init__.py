"""Built-in connectors, one package per third-party API.

Each package exposes a ``Connector`` object and is registered in ``pyproject.toml`` under the
entry-point group ``mashpipe.connectors`` exactly like a third-party plugin would be. Connectors
import only ``app.sdk``.
"""
