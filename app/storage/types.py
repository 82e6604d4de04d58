"""Column types shared by the tables: aware UTC timestamps and JSON documents.

* :class:`UTCDateTime` stores every timestamp in UTC and always gives back an aware
  ``datetime`` in UTC, also on SQLite (which has no time zone support of its own).
  Naive datetimes are refused: they are almost always a bug (local time taken for UTC).
* :data:`JSONDocument` is a JSON column whose Python ``None`` is SQL ``NULL``.
* :func:`dumps_json` / :func:`loads_json` are the serializers the engine is built with
  (orjson to write, the exact stdlib parser to read); :func:`dumps_json` never fails on odd
  values (sets, bytes, decimals, big ints).
"""

from __future__ import annotations

import base64
import decimal
import json
import math
from datetime import UTC, date, datetime, time
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.types import TypeDecorator

_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    """Turn values JSON does not know into the closest JSON value."""
    if isinstance(value, decimal.Decimal):
        as_float = float(value)
        return as_float if math.isfinite(as_float) else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    return str(value)


def dumps_json_bytes(value: Any) -> bytes:
    """Serialize ``value`` as compact UTF-8 JSON bytes; never raises for odd values."""
    try:
        # Without OPT_NON_STR_KEYS first: it makes orjson ~40% slower, and keys are nearly always text.
        return orjson.dumps(value, default=_default)
    except (orjson.JSONEncodeError, TypeError):
        pass
    try:
        return orjson.dumps(value, default=_default, option=_ORJSON_OPTIONS)
    except (orjson.JSONEncodeError, TypeError):
        # e.g. integers beyond 64 bits or circular structures: the slow path decides.
        try:
            return json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":")).encode()
        except (ValueError, TypeError, RecursionError):
            return json.dumps(str(value)).encode()


class EncodedJSON(str):
    """JSON text :func:`dumps_json` already produced: bound to a JSON column as it is, not encoded again
    (e.g. a step output encoded once to measure its size)."""

    __slots__ = ()


def dumps_json(value: Any) -> str:
    """Serialize ``value`` as compact JSON text (see :func:`dumps_json_bytes`); :class:`EncodedJSON`
    is already that text."""
    if type(value) is EncodedJSON:
        return str.__str__(value)
    return dumps_json_bytes(value).decode("utf-8")


# Every ASCII digit mapped to "0", every other byte to a space: a run of 19 digits may be an integer beyond
# 64 bits (orjson would parse it as a float), so such text goes to the exact stdlib parser.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_DIGIT_RUN = b"0" * 19  # after the translation above, every digit is "0"


def loads_json(text: str | bytes | int | float) -> Any:
    """Parse JSON text or bytes, exactly as the stdlib parser would.

    orjson parses most documents (~2x faster); text with a run of 19 or more digits (maybe an
    integer beyond 64 bits, which orjson would turn into a float) or that orjson refuses (``NaN``,
    lone surrogates) goes to :func:`json.loads`. Numbers are given back as they are: SQLite's
    column affinity turns a stored JSON number (the text ``1``) into a number.
    """
    if isinstance(text, int | float):
        return text
    try:
        raw = text.encode("utf-8") if isinstance(text, str) else text
    except UnicodeEncodeError:
        return json.loads(text)
    if _LONG_DIGIT_RUN not in raw.translate(_DIGITS_ONLY):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and returned as an aware UTC ``datetime``."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = _aware_utc(value)
        if dialect.name == "sqlite":
            # SQLite stores text without an offset: store the UTC wall clock.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _aware_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime or a non-datetime is refused (TypeError / ValueError)."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"naive datetime {value.isoformat()} refused: pass an aware datetime, e.g. datetime.now(UTC)"
        )
    return value.astimezone(UTC)


def sqlite_utc_text(value: datetime) -> str:
    """The text a :class:`UTCDateTime` column stores on SQLite for ``value``: its UTC wall clock as
    ``YYYY-MM-DD HH:MM:SS.ffffff`` (what SQLAlchemy's SQLite ``DATETIME`` binds), for writers that bind
    values themselves. Refuses naive datetimes and non-datetimes as :class:`UTCDateTime` does."""
    if type(value) is datetime and value.tzinfo is UTC:
        return value.isoformat(" ", "microseconds")[:-6]  # "+00:00" dropped
    value = _aware_utc(value)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )


class SQLiteJSONText(JSON):
    """JSON kept in a ``TEXT`` column on SQLite.

    A column declared ``JSON`` has NUMERIC affinity in SQLite, which rewrites documents that
    are a bare number (``1.0`` becomes ``1``, ``1e400`` becomes infinity, big integers lose
    precision). ``TEXT`` affinity keeps the JSON text exactly as written.
    """

    cache_ok = True


@compiles(SQLiteJSONText, "sqlite")
def _compile_sqlite_json_text(_type: SQLiteJSONText, _compiler: Any, **_kw: Any) -> str:
    return "TEXT"


JSONDocument = JSON(none_as_null=True).with_variant(SQLiteJSONText(none_as_null=True), "sqlite")
"""A JSON column type; Python ``None`` is stored as SQL ``NULL`` (not the JSON ``null``).
On SQLite the column is ``TEXT`` (see :class:`SQLiteJSONText`)."""
