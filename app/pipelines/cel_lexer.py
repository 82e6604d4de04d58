"""A small, forgiving lexer for CEL source text, and the splitter of ``${{ }}`` templates.

The CEL library compiles and evaluates; this module only *looks* at the text, so that Mashpipe
can find where templates end (``}}`` inside a string or a map literal does not close one), which
variables an expression reads and at which offset, and rewrite ``default(a.b.c, x)`` safely.
It never raises: text it cannot read becomes an ``error`` token and the CEL compiler reports it.

>>> [t.text for t in tokenize('steps.hn.output[0] != null')]
['steps', '.', 'hn', '.', 'output', '[', '0', ']', '!=', 'null']
>>> [(s.text, s.expression) for s in split_template('Hi ${{ name }}!')]
[('Hi ', ' name '), ('!', None)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

TokenKind = Literal["ident", "keyword", "number", "string", "punct", "error"]

KEYWORDS = frozenset({"true", "false", "null", "in"})
RESERVED = frozenset(
    {
        "as", "break", "const", "continue", "else", "for", "function", "if", "import", "let",
        "loop", "package", "namespace", "return", "var", "void", "while",
    }
)  # fmt: skip
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})

_STRING_PREFIX = re.compile(r"(?:[rR][bB]?|[bB][rR]?)?(?=['\"])")
_TOKEN = re.compile(
    r"(?P<space>(?:\s+|//[^\n]*)+)"
    r"|(?P<string>(?:[rR][bB]?|[bB][rR]?)?['\"])"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:[0-9]+\.[0-9]+|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?[uU]?)"
    r"|(?P<punct>==|!=|<=|>=|&&|\|\||[()\[\]{}.,:?!\-+*/%<>])"
)


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical token: ``start``/``end`` are character offsets into the lexed text."""

    kind: TokenKind
    text: str
    start: int
    end: int


def _string_end(source: str, pos: int) -> tuple[int, bool]:
    """End offset of the string literal starting at ``pos`` (prefix included) and whether it closed."""
    prefix = _STRING_PREFIX.match(source, pos)
    assert prefix is not None  # the caller checked a quote follows
    raw = "r" in prefix.group(0).lower()
    i = prefix.end()
    quote = source[i]
    delim = quote * 3 if source.startswith(quote * 3, i) else quote
    i += len(delim)
    while i < len(source):
        if not raw and source[i] == "\\":
            i += 2
            continue
        if source.startswith(delim, i):
            return i + len(delim), True
        if len(delim) == 1 and source[i] == "\n":
            return i, False
        i += 1
    return len(source), False


def tokenize(source: str, start: int = 0, end: int | None = None) -> list[Token]:
    """The tokens of ``source[start:end]`` with offsets into ``source``; comments and spaces dropped."""
    stop = len(source) if end is None else end
    tokens: list[Token] = []
    append = tokens.append
    match = _TOKEN.match
    i = start
    while i < stop:
        found = match(source, i, stop)
        if found is None:
            append(Token("error", source[i], i, i + 1))
            i += 1
            continue
        kind = found.lastgroup
        j = found.end()
        if kind == "string":
            j, closed = _string_end(source, i)
            j = min(j, stop)
            append(Token("string" if closed else "error", source[i:j], i, j))
        elif kind == "ident":
            word = found.group()
            append(Token("keyword" if word in KEYWORDS else "ident", word, i, j))
        elif kind != "space":
            append(Token(kind, found.group(), i, j))  # type: ignore[arg-type]
        i = j
    return tokens


def string_literal_value(token: Token) -> str | None:
    """The value of a simple string literal token (no escapes), else None."""
    if token.kind != "string":
        return None
    text = token.text
    if text[:1] in "rRbB":
        return None
    for quote in ('"""', "'''", '"', "'"):
        if text.startswith(quote) and text.endswith(quote) and len(text) >= 2 * len(quote):
            inner = text[len(quote) : len(text) - len(quote)]
            return None if "\\" in inner else inner
    return None


@dataclass(frozen=True, slots=True)
class Segment:
    """Literal ``text`` followed by one ``${{ expression }}`` (``expression`` None for the tail).

    ``expression_start`` is the offset of the expression text (just after ``${{``) in the field.
    """

    text: str
    expression: str | None = None
    expression_start: int = 0


class UnclosedTemplate(ValueError):
    """``${{`` without its ``}}``; ``offset`` points at the ``${{``."""

    def __init__(self, offset: int) -> None:
        super().__init__("unclosed `${{`: close it with `}}`")
        self.offset = offset


def _template_end(raw: str, start: int) -> int | None:
    """Offset of the ``}}`` closing the expression that starts at ``start``, else None."""
    depth = 0
    i = start
    while i < len(raw):
        ch = raw[i]
        if ch in "'\"":
            i, closed = _string_end(raw, i)
            if not closed:
                # An unclosed quote: fall back to the first `}}`, and let CEL report the quote.
                found = raw.find("}}", start)
                return found if found >= 0 else None
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0 and raw.startswith("}}", i):
                return i
            depth = max(depth - 1, 0)
        i += 1
    return None


def split_template(raw: str) -> list[Segment]:
    """Cut a field into literal text and ``${{ }}`` expressions; raises :class:`UnclosedTemplate`."""
    segments: list[Segment] = []
    pos = 0
    while True:
        opening = raw.find("${{", pos)
        if opening < 0:
            segments.append(Segment(raw[pos:]))
            return segments
        start = opening + 3
        closing = _template_end(raw, start)
        if closing is None:
            raise UnclosedTemplate(opening)
        segments.append(Segment(raw[pos:opening], raw[start:closing], start))
        pos = closing + 2


def has_template(value: object) -> bool:
    """Whether a value from the file holds ``${{`` anywhere (strings in lists and maps included)."""
    if isinstance(value, str):
        return "${{" in value
    if isinstance(value, dict):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(has_template(v) for v in value)
    return False
