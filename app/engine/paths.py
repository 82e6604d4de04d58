"""What an expression reads, found by looking at its text: the engine's two evaluation shortcuts.

Converting a Python value into a CEL value costs about 1 µs per map key and per string, on every
evaluation. Two facts found here make evaluation over big lists cheap:

* a *pure path*: the whole expression is one chain of static member reads from a variable
  (``steps.hn.output``, ``item.title``, ``item["a b"]``, ``index``). The engine reads it with plain
  dict lookups, without CEL. A path through ``null`` gives ``null`` (like a reference to a skipped
  step); a missing key is the same error CEL gives;
* a *projection* for each variable: the static member chains read from it. ``item.score > 3 &&
  item.title.contains("x")`` reads only ``score`` and ``title`` of ``item``, so only those two keys
  are handed to CEL, not an API object of forty fields. A variable used in any other way (``item``
  alone, ``item[i]``, ``size(item)``, a macro variable of the same name) is handed over whole.

>>> analyze("item.title.contains(inputs.q)").projections
{'item': {'title': None}, 'inputs': {'q': None}}
>>> analyze("steps.hn.output").path
('steps', ('hn', 'output'))
>>> project({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None}})
{'b': {'c': 2}}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.errors import ExpressionError
from app.pipelines.cel_lexer import Token, string_literal_value, tokenize
from app.pipelines.expressions import ROOTS

# A projection tree: None means "the whole value"; a dict keeps only those keys (each projected).
Projection = dict[str, "Projection"] | None


@dataclass(frozen=True, slots=True)
class Analysis:
    """``path``: (root, keys) when the expression is a pure path, else None.
    ``projections``: for each variable the expression reads, what part of it it reads."""

    path: tuple[str, tuple[str, ...]] | None = None
    projections: dict[str, Projection] = field(default_factory=dict)


def _chain(tokens: list[Token], j: int) -> tuple[list[str], int]:
    """The static members read from the token before ``j``: ``.name`` (not a method) or ``["name"]``."""
    keys: list[str] = []
    n = len(tokens)
    while j < n:
        tok = tokens[j]
        if (
            tok.text == "."
            and tok.kind == "punct"
            and j + 1 < n
            and tokens[j + 1].kind in ("ident", "keyword")
            and not (j + 2 < n and tokens[j + 2].text == "(")
        ):
            keys.append(tokens[j + 1].text)
            j += 2
            continue
        if (
            tok.text == "["
            and tok.kind == "punct"
            and j + 2 < n
            and tokens[j + 2].text == "]"
            and (literal := string_literal_value(tokens[j + 1])) is not None
        ):
            keys.append(literal)
            j += 3
            continue
        break
    return keys, j


def _merge(tree: Projection, keys: list[str]) -> Projection:
    """Add one read path to a projection tree."""
    if tree is None or not keys:
        return None
    head, rest = keys[0], keys[1:]
    if head in tree:
        tree[head] = _merge(tree[head], rest)
    else:
        tree[head] = _merge({}, rest) if rest else None
    return tree


def analyze(source: str) -> Analysis:
    """Find the pure path and the projections of a bare CEL expression (never raises)."""
    tokens = tokenize(source)
    if any(tok.kind == "error" for tok in tokens):
        return Analysis()
    reads: dict[str, list[list[str]]] = {}
    path: tuple[str, tuple[str, ...]] | None = None
    for i, tok in enumerate(tokens):
        if tok.kind != "ident" or tok.text not in ROOTS:
            continue
        if i > 0 and tokens[i - 1].text == "." and tokens[i - 1].kind == "punct":
            continue  # a member named like a variable
        if i + 1 < len(tokens) and tokens[i + 1].text == "(":
            continue  # a function call
        keys, end = _chain(tokens, i + 1)
        reads.setdefault(tok.text, []).append(keys)
        if i == 0 and end == len(tokens):
            path = (tok.text, tuple(keys))
    projections: dict[str, Projection] = {}
    for root, paths in reads.items():
        tree: Projection = {}
        for keys in paths:
            tree = _merge(tree, keys)
        projections[root] = tree
    return Analysis(path, projections)


def project(value: Any, tree: Projection) -> Any:
    """The part of ``value`` that ``tree`` reads; keys missing from ``value`` stay missing."""
    if tree is None or not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    for key, sub in tree.items():
        if key in value:
            out[key] = project(value[key], sub)
    return out


def projector(tree: Projection) -> Callable[[Any], Any]:
    """:func:`project` specialised for one tree (the per-item hot path)."""
    if tree is None:
        return lambda value: value
    if all(sub is None for sub in tree.values()):
        keys = tuple(tree)

        def flat(value: Any) -> Any:
            if type(value) is not dict:
                return project(value, tree)
            return {key: value[key] for key in keys if key in value}

        return flat
    return lambda value: project(value, tree)


def json_type(value: Any) -> str:
    """The JSON type name of a value, for messages: null, boolean, integer, number, string, list, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def read_path(source: str, value: Any, keys: tuple[str, ...]) -> Any:
    """Follow ``keys`` into ``value`` as CEL would, except that a path through null gives null."""
    for key in keys:
        if value is None:
            return None
        if isinstance(value, Mapping):
            try:
                value = value[key]
            except KeyError:
                raise ExpressionError(f"`{source}`: no such key '{key}'") from None
        else:
            raise ExpressionError(f"`{source}`: cannot read '{key}' of a {json_type(value)}")
    return value
