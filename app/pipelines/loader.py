"""Load pipeline YAML into plain JSON-like data, with the position of every node.

Built on ruamel.yaml's event parser (its C parser when ``ruamel.yaml.clib`` is installed, about ten
times faster; the pure-Python one otherwise): the document is rebuilt here from the events, so
that every problem is collected instead of stopping at the first one, and the result holds only
``dict``/``list``/``str``/``int``/``float``/``bool``/``None``.

Scalars follow the YAML 1.2 core schema: ``on``/``yes``/``no`` and dates stay strings; only
``true``/``false`` are booleans and ``null``/``~``/empty are null. Refused, as problems:
syntax errors (``yaml_syntax``), duplicate keys (``duplicate_key``), anchors and aliases
(``yaml_alias``), tags other than the core ones (``yaml_tag``), keys that are not text
(``non_string_key``), a second document (``multiple_documents``), nesting deeper than the limit
(``too_deep``), a source larger than the caller's limit (``too_large``), infinite and NaN numbers
(``unsupported_value``).

>>> doc = load_yaml("steps:\\n  - id: a\\n    on: yes\\n")
>>> doc.data, doc.position(("steps", 0, "on"))
({'steps': [{'id': 'a', 'on': 'yes'}]}, (3, 9))
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from app.pipelines.problems import Path, Problem, format_path

try:  # the C parser, when ruamel.yaml.clib is installed
    from _ruamel_yaml import CParser
except ImportError:  # pragma: no cover - depends on the installation
    CParser = None

MAX_DEPTH = 64

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")

_SPECIAL_STARTS = frozenset("0123456789+-.~nNtTfF")  # what a null, boolean or number starts with
_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_CORE}{name}" for name in ("str", "int", "float", "bool", "null")}
_MAP_TAG = f"{_CORE}map"
_SEQ_TAG = f"{_CORE}seq"


class _Unsupported(ValueError):
    """A core-schema value Mashpipe does not take (infinity, NaN)."""


def resolve_plain(text: str) -> Any:
    """A plain (unquoted) scalar by the YAML 1.2 core schema; raises ``_Unsupported`` for inf/NaN."""
    if text and text[0] not in _SPECIAL_STARTS:
        return text  # the fast path: most scalars are words
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return int(text)
    if _OCT.match(text):
        return int(text[2:], 8)
    if _HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        value = float(text)
        if math.isinf(value):
            raise _Unsupported(text)
        return value
    if _INF.match(text) or _NAN.match(text):
        raise _Unsupported(text)
    return text


@dataclass(slots=True)
class _Span:
    start: int
    end: int
    style: str | None


@dataclass(slots=True)
class LoadedYaml:
    """The loaded document: ``data`` (None when unreadable), ``problems`` and positions.

    ``positions`` maps a path such as ``("steps", 3, "with", "url")`` to the 1-based
    ``(line, column)`` of its value; ``key_positions`` to that of its key (mapping entries only).
    """

    source: str
    data: Any = None
    problems: list[Problem] = field(default_factory=list)
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    _spans: dict[Path, _Span] = field(default_factory=dict)
    _line_starts: list[int] | None = None

    def position(self, path: Path) -> tuple[int, int]:
        """Where the value at ``path`` starts, or its nearest existing ancestor (1, 1 at worst)."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return found
        return (1, 1)

    def key_position(self, path: Path) -> tuple[int, int]:
        """Where the key of the mapping entry at ``path`` is, else :meth:`position`."""
        return self.key_positions.get(path) or self.position(path)

    def string_position(self, path: Path, offset: int) -> tuple[int, int]:
        """Where character ``offset`` of the string value at ``path`` is in the source.

        Exact for plain, quoted and block scalars without escapes; otherwise as close as the text
        allows; the start of the value when the string is not known.
        """
        span = self._spans.get(path)
        value = _get(self.data, path)
        if span is None or not isinstance(value, str):
            return self.position(path)
        return self._index_position(_align(self.source, span, value, offset))

    def _index_position(self, index: int) -> tuple[int, int]:
        if self._line_starts is None:
            self._line_starts = [0] + [i + 1 for i, ch in enumerate(self.source) if ch == "\n"]
        line = bisect.bisect_right(self._line_starts, index) - 1
        return line + 1, index - self._line_starts[line] + 1

    def problem(self, path: Path, code: str, message: str, *, key: bool = False) -> Problem:
        """A :class:`Problem` located at ``path`` (at its key when ``key``)."""
        line, column = self.key_position(path) if key else self.position(path)
        return Problem(line=line, column=column, path=format_path(path), code=code, message=message)


def _plain_kind(text: str) -> str:
    """What a plain scalar is: text, null, a boolean or a number."""
    try:
        value = resolve_plain(text)
    except _Unsupported:
        return "a number"
    if isinstance(value, str):
        return "text"
    return "null" if value is None else "a boolean" if isinstance(value, bool) else "a number"


def _get(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


_ESCAPE_LENGTHS = {"x": 4, "u": 6, "U": 10}


def _align(source: str, span: _Span, value: str, offset: int) -> int:
    """The source index of ``value[offset]``, walking the raw text of the scalar alongside the value.

    Raw characters that produce nothing (quotes, block headers, indentation, line folding) are
    skipped; an escape (``\\t``, ``\\u00e9``, ``''``) maps to where it starts.
    """
    if offset >= len(value):  # just after the last character
        return _align(source, span, value, len(value) - 1) + 1 if value else span.start
    j, end = span.start, span.end
    for i, ch in enumerate(value):
        at = end
        while j < end:
            raw = source[j]
            if raw == ch and not (span.style == '"' and raw == "\\"):
                at, j = j, j + 1
            elif span.style == '"' and raw == "\\":
                nxt = source[j + 1] if j + 1 < end else ""
                if nxt in ("\n", "\r"):  # an escaped line break produces nothing
                    j += 2
                    while j < end and source[j] in " \t\r\n":
                        j += 1
                    continue
                at, j = j, j + _ESCAPE_LENGTHS.get(nxt, 2)
            elif span.style == "'" and ch == "'" and source.startswith("''", j):
                at, j = j, j + 2
            elif ch.isspace() and raw.isspace():
                at, j = j, j + 1
            else:
                j += 1
                continue
            break
        if i == offset:
            return min(at, end)
    return end


class _Builder:
    """Rebuilds one document from parser events, collecting problems and positions."""

    def __init__(self, doc: LoadedYaml, events: Iterator[Any], max_depth: int) -> None:
        self.doc = doc
        self.events = events
        self.max_depth = max_depth

    def _problem(self, mark: Any, path: Path, code: str, message: str) -> None:
        line, column = mark.line + 1, mark.column + 1
        problem = Problem(line=line, column=column, path=format_path(path), code=code, message=message)
        self.doc.problems.append(problem)

    def _check_node(self, event: Any, path: Path) -> None:
        if isinstance(event, NodeEvent) and event.anchor:
            message = f"anchors (`&{event.anchor}`) are not allowed; repeat the value instead"
            self._problem(event.start_mark, path, "yaml_alias", message)
        tag = getattr(event, "tag", None)
        if tag is None:
            return
        allowed = (
            _SCALAR_TAGS
            if isinstance(event, ScalarEvent)
            else {_MAP_TAG}
            if isinstance(event, MappingStartEvent)
            else {_SEQ_TAG}
        )
        if str(tag) not in allowed:
            shown = str(tag).replace(_CORE, "!!")
            self._problem(event.start_mark, path, "yaml_tag", f"tag `{shown}` is not allowed; remove it")

    def _skip(self, event: Any) -> None:
        """Consume the rest of a collection whose start ``event`` was already read."""
        if not isinstance(event, CollectionStartEvent):
            return
        depth = 1
        while depth:
            nxt = next(self.events)
            if isinstance(nxt, CollectionStartEvent):
                depth += 1
            elif isinstance(nxt, MappingEndEvent | SequenceEndEvent):
                depth -= 1

    def node(self, event: Any, path: Path, depth: int, record: bool = True) -> Any:
        """The value of the node starting with ``event``; positions recorded under ``path``."""
        if record:
            self.doc.positions[path] = (event.start_mark.line + 1, event.start_mark.column + 1)
        if isinstance(event, AliasEvent):
            message = f"aliases (`*{event.anchor}`) are not allowed; repeat the value instead"
            self._problem(event.start_mark, path, "yaml_alias", message)
            return None
        self._check_node(event, path)
        if isinstance(event, ScalarEvent):
            return self._scalar(event, path, record)
        if depth >= self.max_depth:
            message = f"the document nests deeper than {self.max_depth} levels"
            self._problem(event.start_mark, path, "too_deep", message)
            self._skip(event)
            return None
        if isinstance(event, SequenceStartEvent):
            items: list[Any] = []
            while not isinstance(nxt := next(self.events), SequenceEndEvent):
                items.append(self.node(nxt, (*path, len(items)), depth + 1, record))
            return items
        return self._mapping(path, depth, record)

    def _scalar(self, event: Any, path: Path, record: bool) -> Any:
        value = event.value
        tag = str(event.tag) if event.tag is not None else None
        plain = not event.style and event.implicit[0]
        if plain or (tag in _SCALAR_TAGS and tag != f"{_CORE}str"):
            try:
                value = resolve_plain(value)
            except _Unsupported:
                message = f"`{value}` is not supported: numbers must be finite"
                self._problem(event.start_mark, path, "unsupported_value", message)
                return None
        if isinstance(value, str) and record:
            self.doc._spans[path] = _Span(event.start_mark.index, event.end_mark.index, event.style or None)
        return value

    def _mapping(self, path: Path, depth: int, record: bool) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while not isinstance(key_event := next(self.events), MappingEndEvent):
            key: str | None = None
            mark = key_event.start_mark
            if isinstance(key_event, ScalarEvent):
                self._check_node(key_event, path)
                key = key_event.value
                kind = _plain_kind(key) if (not key_event.style and key_event.implicit[0]) else "text"
                if kind != "text":
                    message = f'key `{key}` is {kind}, not text; quote it: "{key}"'
                    self._problem(mark, (*path, key), "non_string_key", message)
                    key = None  # the entry is left out
            elif isinstance(key_event, AliasEvent):
                message = f"aliases (`*{key_event.anchor}`) are not allowed; repeat the value instead"
                self._problem(mark, path, "yaml_alias", message)
            else:
                self._problem(mark, path, "non_string_key", "a key must be text, not a list or a mapping")
                self._skip(key_event)
            value_event = next(self.events)
            child = (*path, key) if key is not None else path
            duplicate = key is not None and key in result
            if duplicate:
                first = self.doc.key_positions.get(child)
                where = f" (first at line {first[0]})" if first else ""
                self._problem(mark, child, "duplicate_key", f"duplicate key `{key}`{where}")
            keep = key is not None and not duplicate
            value = self.node(value_event, child, depth + 1, record and keep)
            if keep and key is not None:
                result[key] = value
                if record:
                    self.doc.key_positions[child] = (mark.line + 1, mark.column + 1)
        return result


def _events(source: str, pure: bool) -> Iterator[Any]:
    if CParser is not None and not pure:
        parser = CParser(source)
        try:
            while parser.check_event():
                yield parser.get_event()
        finally:
            parser.dispose()
    else:
        yield from YAML(typ="safe", pure=True).parse(source)


def _syntax_problem(source: str, exc: YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        line, column = mark.line + 1, mark.column + 1
    else:
        index = getattr(exc, "position", 0) or 0
        line = source.count("\n", 0, index) + 1
        column = index - (source.rfind("\n", 0, index) + 1) + 1
    problem = getattr(exc, "problem", None) or str(exc).split("\n", 1)[0]
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    message = str(problem)
    if context and context_mark is not None:
        where = f"line {context_mark.line + 1}, column {context_mark.column + 1}"
        message = f"{message} ({context} started at {where})"
    return Problem(line=line, column=column, path="", code="yaml_syntax", message=f"YAML syntax: {message}")


def load_yaml(
    source: str, *, max_bytes: int | None = None, max_depth: int = MAX_DEPTH, pure: bool = False
) -> LoadedYaml:
    """Load ``source``; problems are returned in ``.problems``, never raised.

    ``pure`` forces the pure-Python parser (the C one is used when installed).
    """
    doc = LoadedYaml(source=source)
    if max_bytes is not None:
        size = len(source.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            message = f"the file is {size} bytes; the limit is {max_bytes}"
            doc.problems.append(Problem(line=1, column=1, path="", code="too_large", message=message))
            return doc
    events = _events(source, pure)
    try:
        builder = _Builder(doc, events, max_depth)
        documents = 0
        for event in events:
            if isinstance(event, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    mark = event.start_mark
                    doc.problems.append(
                        Problem(
                            line=mark.line + 1,
                            column=mark.column + 1,
                            path="",
                            code="multiple_documents",
                            message="only one YAML document is allowed per file; remove the second `---`",
                        )
                    )
                    break
                doc.data = builder.node(next(events), (), 0)
            elif isinstance(event, StreamEndEvent):
                break
    except YAMLError as exc:
        doc.data = None
        doc.problems.append(_syntax_problem(source, exc))
    except StopIteration:  # the parser ended inside a node: only after an error it reported
        doc.data = None
        message = "YAML syntax: unexpected end of file"
        doc.problems.append(Problem(line=1, column=1, path="", code="yaml_syntax", message=message))
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
    return doc
