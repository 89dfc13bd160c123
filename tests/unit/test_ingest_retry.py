"""A concurrent writer makes an ingest transaction fail: the whole ingest runs again, a few times."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from meter2cash.core.errors import M2CError
from meter2cash.mdm import ingest


@pytest.fixture
def sessions() -> Iterator[sessionmaker[Session]]:
    engine = create_engine("sqlite://")
    yield sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(ingest.ingest_committed.retry, "sleep", slept.append)
    return slept


def _fails(monkeypatch: pytest.MonkeyPatch, errors: list[Exception]) -> list[bool]:
    """``ingest_bytes`` raises ``errors`` one by one, then stores; returns, per call, whether it ran
    inside a transaction of its own."""
    calls: list[bool] = []

    def fake(session: Session, data: bytes, **_: object) -> str:
        calls.append(session.in_transaction())
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "stored"

    monkeypatch.setattr(ingest, "ingest_bytes", fake)
    return calls


def _unique() -> IntegrityError:
    return IntegrityError("INSERT INTO channel_day", {}, Exception("duplicate key"))


def _locked() -> OperationalError:
    return OperationalError("UPDATE channel_day", {}, Exception("database is locked"))


def test_the_ingest_runs_again_after_a_unique_key_or_a_lock(sessions, waits, monkeypatch):
    calls = _fails(monkeypatch, [_unique(), _locked(), _unique()])
    assert ingest.ingest_committed(sessions, b"meter,channel,start,value\n") == "stored"
    assert calls == [True, True, True, True]
    assert waits == pytest.approx([0.05, 0.10, 0.15])


def test_after_four_attempts_the_last_error_is_raised(sessions, waits, monkeypatch):
    last = _locked()
    calls = _fails(monkeypatch, [_unique(), _unique(), _unique(), last, _unique()])
    with pytest.raises(OperationalError) as raised:
        ingest.ingest_committed(sessions, b"")
    assert raised.value is last and len(calls) == 4 and len(waits) == 3


def test_a_file_that_cannot_be_read_is_not_tried_again(sessions, waits, monkeypatch):
    calls = _fails(monkeypatch, [M2CError("not a reading file", code="ingest.bad_file")])
    with pytest.raises(M2CError):
        ingest.ingest_committed(sessions, b"\x00")
    assert len(calls) == 1 and waits == []
