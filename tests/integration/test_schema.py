from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError

from meter2cash.bootstrap import bootstrap
from meter2cash.cis.ledger.models import JournalEntry, JournalLine, LedgerAccount
from meter2cash.config import Settings
from meter2cash.core.errors import DatabaseNotMigrated
from meter2cash.core.quality import Quality
from meter2cash.db import upgrade
from meter2cash.mdm.models import Channel, Meter
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore


def test_unmigrated_database_is_refused(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(DatabaseNotMigrated, match="m2c db upgrade"):
        bootstrap(settings)
    upgrade(settings.database_url)
    bootstrap(settings).dispose()


def test_money_round_trips_exactly(session):
    session.add(LedgerAccount(code="1100", name="AR", type="asset"))
    entry = JournalEntry(effective_date=date(2026, 10, 31), kind="test")
    entry.lines = [
        JournalLine(ledger_account="1100", amount=Decimal("1234567890.1234"), currency="INR"),
        JournalLine(ledger_account="1100", amount=Decimal("-0.0001"), currency="INR"),
    ]
    session.add(entry)
    session.commit()
    amounts = sorted(session.scalars(select(JournalLine.amount)))
    assert amounts == [Decimal("-0.0001"), Decimal("1234567890.1234")]


def test_float_money_is_refused(session):
    session.add(LedgerAccount(code="1100", name="AR", type="asset"))
    entry = JournalEntry(effective_date=date(2026, 10, 31), kind="test")
    entry.lines = [JournalLine(ledger_account="1100", amount=0.1, currency="INR")]
    session.add(entry)
    with pytest.raises(StatementError, match="float") as info:
        session.commit()
    assert isinstance(info.value.orig, TypeError)


def _channel(session) -> int:
    rts = ensure_catalogue(session)
    meter = Meter(serial="M-1")
    session.add(meter)
    session.flush()
    ch = Channel(meter_id=meter.id, reading_type_id=rts["kwh_import_15m"].id)
    session.add(ch)
    session.flush()
    return ch.id


def test_store_merges_reads_back_across_days_and_keeps_history(session):
    cid = _channel(session)
    store = MeasurementStore(session)
    d1, d2 = date(2026, 10, 1), date(2026, 10, 2)
    counts = store.merge(
        {(cid, d1): (np.arange(92, 96), np.full(4, 0.5)), (cid, d2): (np.arange(4), np.ones(4))}, {cid: 900}
    )
    assert (counts.new, counts.duplicate, counts.days_written) == (8, 0, 2)
    session.commit()
    again = store.merge({(cid, d1): (np.arange(92, 96), np.full(4, 0.5))}, {cid: 900})
    assert (again.new, again.duplicate, again.days_written) == (0, 4, 0)
    fix = store.merge({(cid, d1): (np.array([95]), np.array([0.75]))}, {cid: 900})
    assert (fix.changed, fix.days_written) == (1, 1)
    session.commit()
    w = store.read_window(
        [cid], datetime(2026, 10, 1, 23, tzinfo=UTC), datetime(2026, 10, 2, 1, 30, tzinfo=UTC), 900
    )
    assert w.values.shape == (1, 10)
    np.testing.assert_allclose(w.values[0, :8], [0.5, 0.5, 0.5, 0.75, 1, 1, 1, 1])
    assert np.isnan(w.values[0, 8:]).all()
    assert (w.flags[0, 8:] == Quality.MISSING).all()
    assert w.versions[(cid, d1)] == 2
    hist = store.history(cid, d1)
    assert [h.version for h in hist] == [1] and hist[0].reason == "ingest"
    assert hist[0].superseded_at.tzinfo is not None and hist[0].vee_status == "raw"
    np.testing.assert_allclose(np.frombuffer(hist[0].raw_values, "<f8")[92:], [0.5, 0.5, 0.5, 0.5])
    assert np.frombuffer(hist[0].flags, "<u2").shape == (96,)


def test_a_stale_copy_never_overwrites_data_that_arrived_meanwhile(platform):
    from sqlalchemy.exc import OperationalError

    from meter2cash.core.errors import Conflict

    with platform.sessions() as s:
        cid = _channel(s)
        MeasurementStore(s).merge({(cid, date(2026, 10, 1)): (np.arange(4), np.ones(4))}, {cid: 900})
        s.commit()
    key = (cid, date(2026, 10, 1))
    with platform.sessions() as vee:
        copy = MeasurementStore(vee).load_days([key])[key]  # VEE reads the day (version 1)
        with platform.sessions() as ingest:  # meanwhile, late data is accepted and committed
            MeasurementStore(ingest).merge({key: (np.arange(4, 8), np.full(4, 2.0))}, {cid: 900})
            ingest.commit()
        copy.values = np.nan_to_num(copy.raw)
        copy.vee_status = "validated"
        with pytest.raises((Conflict, OperationalError)):
            MeasurementStore(vee).save([copy], reason="vee")
            vee.flush()
        vee.rollback()
    with platform.sessions() as s:
        day = MeasurementStore(s).load_days([key])[key]
    assert day.version == 2 and day.vee_status == "raw"
    np.testing.assert_allclose(day.raw[:8], [1, 1, 1, 1, 2, 2, 2, 2])


def test_a_rollback_undoes_what_a_released_savepoint_wrote(platform):
    """A savepoint is part of the transaction around it on every database: the outer rollback
    takes back what the savepoint wrote, even when the savepoint came before any other write."""
    with platform.sessions() as s:
        s.scalar(select(Meter.id))  # a read first: the sqlite3 module begins nothing for it
        with s.begin_nested():
            s.add(Meter(serial="SAVEPOINT-1"))
        s.add(Meter(serial="SAVEPOINT-2"))
        s.flush()
        s.rollback()
        assert s.scalars(select(Meter.serial)).all() == []
