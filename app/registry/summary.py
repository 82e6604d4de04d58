"""Plain-language summaries of an operation's JSON Schemas, for ``mashpipe connectors show`` and the docs.

``fields(schema)`` lists the top-level properties of an object schema (or of the items of an array
schema) as :class:`FieldSummary` rows; ``type_text(schema, defs)`` renders one schema as a short type
(``string``, ``integer ≥ 1``, ``list of Issue``, ``one of "open", "closed"``, ``string or null``).
``$ref`` pointers into ``$defs`` are followed, with a guard against cycles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_ENUM = 8
MAX_DEPTH = 6


@dataclass(frozen=True, slots=True)
class FieldSummary:
    """One property: its name, type text, whether it is required, its default (JSON) and description."""

    name: str
    type: str
    required: bool
    default: str | None
    description: str


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def resolve(schema: Any, defs: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """``schema`` with a top-level ``$ref`` into ``defs`` followed (sibling keys win); ``{}`` if unusable."""
    if not isinstance(schema, dict):
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str) and depth < MAX_DEPTH:
        target = defs.get(_ref_name(ref))
        if isinstance(target, dict):
            merged = {**resolve(target, defs, depth + 1), **{k: v for k, v in schema.items() if k != "$ref"}}
            merged.setdefault("title", _ref_name(ref))
            return merged
    return schema


def _constraints(schema: dict[str, Any]) -> str:
    """`` (≥ 1, ≤ 100)``, `` (length ≤ 256)``... or ``""``."""
    parts = []
    for key, text in (
        ("minimum", "≥ {}"),
        ("exclusiveMinimum", "> {}"),
        ("maximum", "≤ {}"),
        ("exclusiveMaximum", "< {}"),
        ("minLength", "length ≥ {}"),
        ("maxLength", "length ≤ {}"),
        ("minItems", "≥ {} items"),
        ("maxItems", "≤ {} items"),
    ):
        if key in schema:
            parts.append(text.format(schema[key]))
    if isinstance(schema.get("pattern"), str):
        parts.append(f"matching {schema['pattern']}")
    return f" ({', '.join(parts)})" if parts else ""


def type_text(schema: Any, defs: dict[str, Any], depth: int = 0) -> str:
    """A short human type for ``schema`` (see the module docstring)."""
    if depth > MAX_DEPTH:
        return "…"
    if schema is True or schema == {}:
        return "any"
    raw = schema if isinstance(schema, dict) else {}
    named = _ref_name(raw["$ref"]) if isinstance(raw.get("$ref"), str) else None
    node = resolve(raw, defs, depth)
    if "const" in node:
        return json.dumps(node["const"], ensure_ascii=False)
    if isinstance(node.get("enum"), list):
        values = [json.dumps(v, ensure_ascii=False) for v in node["enum"][:MAX_ENUM]]
        more = ", …" if len(node["enum"]) > MAX_ENUM else ""
        return "one of " + ", ".join(values) + more
    for combinator in ("anyOf", "oneOf"):
        options = node.get(combinator)
        if isinstance(options, list) and options:
            texts = [type_text(option, defs, depth + 1) for option in options]
            nullable = "null" in texts
            texts = [t for t in texts if t != "null"]
            unique = list(dict.fromkeys(texts))
            return " or ".join(unique + (["null"] if nullable else []))
    if isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
        return type_text(node["allOf"][0], defs, depth + 1)
    kind = node.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if kind == "array":
        items = node.get("items")
        inner = type_text(items, defs, depth + 1) if items is not None else "any"
        return f"list of {inner}" + _constraints(node)
    if kind == "object" or "properties" in node:
        if named or (node.get("title") and "properties" in node):
            return str(named or node["title"])
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return f"object of {type_text(extra, defs, depth + 1)}"
        return "object"
    if kind == "string" and isinstance(node.get("format"), str):
        return f"string ({node['format']})" + _constraints(node)
    if isinstance(kind, str):
        return kind + _constraints(node)
    return "any"


def _one_line(text: Any) -> str:
    return " ".join(str(text).split()) if text else ""


def _defs(schema: dict[str, Any]) -> dict[str, Any]:
    found = schema.get("$defs")
    return found if isinstance(found, dict) else {}


def object_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The object whose fields describe ``schema`` (itself, or its array's items) and the ``$defs``."""
    defs = _defs(schema)
    node = resolve(schema, defs)
    if node.get("type") == "array":
        node = resolve(node.get("items"), defs)
    return node, defs


def fields(schema: dict[str, Any]) -> list[FieldSummary]:
    """The top-level properties of an object schema (or of its array's items), in declaration order."""
    node, defs = object_schema(schema)
    properties = node.get("properties")
    if not isinstance(properties, dict):
        return []
    required = set(node.get("required") or [])
    rows = []
    for name, spec in properties.items():
        spec_node = resolve(spec, defs)
        default = json.dumps(spec_node["default"], ensure_ascii=False) if "default" in spec_node else None
        description = _one_line(
            spec_node.get("description") or (spec.get("description") if isinstance(spec, dict) else None)
        )
        rows.append(
            FieldSummary(
                name=name,
                type=type_text(spec, defs),
                required=name in required,
                default=default,
                description=description,
            )
        )
    return rows


def output_text(schema: dict[str, Any]) -> str:
    """The output's type in words (``list of Issue``, ``Feed``, ``object``...)."""
    return type_text(schema, _defs(schema))
