"""The variables an expression reads, with their offsets: ``steps.X``, ``inputs.X``, ``secrets.X``...

>>> [(r.root, r.name, r.field) for r in find_references('steps.hn.output[0].title + inputs.q')]
[('steps', 'hn', 'output'), ('inputs', 'q', None)]

Identifiers bound by a list macro (the ``x`` of ``list.map(x, x * 2)``) and function names are not
references. A member written ``steps[expr]`` with a computed key is reported ``dynamic``.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.pipelines.cel_lexer import MACROS, Token, string_literal_value, tokenize

# Identifiers CEL knows by itself: type names usable as values (``type(x) == map``).
BUILTIN_IDENTIFIERS = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "optional"}
)


@dataclass(frozen=True, slots=True)
class Reference:
    """One free variable read by an expression; offsets are into the text given to the finder."""

    root: str
    offset: int
    name: str | None = None  # the member after the root: step id, input name, secret name
    name_offset: int = 0
    dynamic: bool = False  # root[expression]: the member is computed
    field: str | None = None  # the member after ``name`` (``output`` / ``status`` for steps)
    field_offset: int = 0


def _member(tokens: list[Token], i: int) -> tuple[str | None, int, bool, int]:
    """The member accessed at ``tokens[i]`` (``.name`` or ``["name"]``): name, offset, dynamic, next index."""
    if i >= len(tokens):
        return None, 0, False, i
    tok = tokens[i]
    if tok.text == "." and i + 1 < len(tokens) and tokens[i + 1].kind in ("ident", "keyword"):
        return tokens[i + 1].text, tokens[i + 1].start, False, i + 2
    if tok.text == "[" and tok.kind == "punct":
        if (
            i + 2 < len(tokens)
            and tokens[i + 2].text == "]"
            and (literal := string_literal_value(tokens[i + 1])) is not None
        ):
            return literal, tokens[i + 1].start + 1, False, i + 3
        return None, tok.start, True, i + 1
    return None, 0, False, i


def _macro_bound(tokens: list[Token]) -> set[str]:
    bound: set[str] = set()
    for i in range(len(tokens) - 4):
        if (
            tokens[i].text == "."
            and tokens[i + 1].text in MACROS
            and tokens[i + 2].text == "("
            and tokens[i + 3].kind == "ident"
            and tokens[i + 4].text == ","
        ):
            bound.add(tokens[i + 3].text)
    return bound


def find_references(source: str, start: int = 0, end: int | None = None) -> list[Reference]:
    """Every free variable read in ``source[start:end]``, in order; offsets are into ``source``."""
    tokens = tokenize(source, start, end)
    bound = _macro_bound(tokens)
    refs: list[Reference] = []
    for i, tok in enumerate(tokens):
        if tok.kind != "ident" or tok.text in bound or tok.text in BUILTIN_IDENTIFIERS:
            continue
        if i > 0 and tokens[i - 1].text == "." and tokens[i - 1].kind == "punct":
            continue  # a member, not a variable
        if i + 1 < len(tokens) and tokens[i + 1].text == "(":
            continue  # a function call
        if i + 1 < len(tokens) and tokens[i + 1].text == "{":
            continue  # a message literal's type name
        name, name_offset, dynamic, nxt = _member(tokens, i + 1)
        field, field_offset = None, 0
        if name is not None:
            field, field_offset, _, _ = _member(tokens, nxt)
        refs.append(Reference(tok.text, tok.start, name, name_offset, dynamic, field, field_offset))
    return refs
