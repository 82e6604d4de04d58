"""Aware UTC timestamps and the JSON serializer."""

from __future__ import annotations

import decimal
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from app.storage import Account, AccountRepo
from app.storage.base import new_id, utcnow
from app.storage.types import dumps_json, loads_json


def test_new_id_is_32_hex():
    first, second = new_id(), new_id()
    assert len(first) == 32
    assert int(first, 16) >= 0
    assert first != second


def test_utcnow_is_aware_utc():
    assert utcnow().utcoffset() == timedelta(0)


async def test_timestamps_come_back_aware_in_utc(session):
    paris_winter = timezone(timedelta(hours=1))
    stamp = datetime(2025, 1, 1, 13, 30, 15, 123456, tzinfo=paris_winter)
    account = Account(name="tz", created_at=stamp)
    session.add(account)
    await session.commit()
    session.expunge_all()
    loaded = await session.scalar(select(Account).where(Account.name == "tz"))
    assert loaded is not None
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at.utcoffset() == timedelta(0)
    assert loaded.created_at == datetime(2025, 1, 1, 12, 30, 15, 123456, tzinfo=UTC)


async def test_stored_value_is_utc(session, db):
    stamp = datetime(2025, 6, 1, 20, 0, tzinfo=timezone(timedelta(hours=-4)))
    session.add(Account(name="wall", created_at=stamp))
    await session.commit()
    raw = (await session.execute(text("SELECT created_at FROM accounts WHERE name = 'wall'"))).scalar()
    if db.backend == "sqlite":  # text without offset: the UTC wall clock
        assert str(raw).startswith("2025-06-02 00:00:00")
    else:
        assert raw == datetime(2025, 6, 2, 0, 0, tzinfo=UTC)


async def test_naive_datetimes_are_refused(session):
    session.add(Account(name="naive", created_at=datetime(2025, 1, 1, 12, 0)))
    with pytest.raises(StatementError, match="naive datetime"):
        await session.flush()
    await session.rollback()
    assert await AccountRepo(session).get_by_name("naive") is None


def test_dumps_json_handles_odd_values():
    value = {
        1: "int key",
        "set": {1},
        "tuple": (1, 2),
        "decimal": decimal.Decimal("1.5"),
        "nan_decimal": decimal.Decimal("NaN"),
        "bytes": b"abc",
        "binary": b"\xff\xfe",
        "when": datetime(2025, 1, 1, tzinfo=UTC),
        "object": object.__new__(type("Thing", (), {"__str__": lambda self: "a thing"})),
        "big": 2**70,
    }
    decoded = loads_json(dumps_json(value))
    assert decoded["1"] == "int key"
    assert decoded["set"] == [1]
    assert decoded["tuple"] == [1, 2]
    assert decoded["decimal"] == 1.5
    assert decoded["nan_decimal"] == "NaN"
    assert decoded["bytes"] == "abc"
    assert decoded["binary"] == "//4="
    assert decoded["when"] == "2025-01-01T00:00:00+00:00"
    assert decoded["object"] == "a thing"
    assert decoded["big"] == 2**70


def test_dumps_json_survives_circular_structures():
    loop: list[object] = []
    loop.append(loop)
    assert isinstance(loads_json(dumps_json(loop)), str)


def test_dumps_json_non_text_keys_without_other_odd_values():
    """Keys that are not text take orjson's non-string-key option (the first, plain attempt refuses them)."""
    assert dumps_json({1: "a", "b": {2.5: [True, None]}}) == '{"1":"a","b":{"2.5":[true,null]}}'
    assert dumps_json({"plain": [1, "x"]}) == '{"plain":[1,"x"]}'
