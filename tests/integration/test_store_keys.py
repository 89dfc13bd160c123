"""Channel-days looked up by key: exactly the keys asked for, found through the primary key."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from sqlalchemy import event

from conftest import make_meter
from meter2cash.mdm.store import DayArrays, MeasurementStore

FIRST = date(2026, 10, 1)


def _stored(session, channels: int, days: int) -> list[int]:
    ids = [make_meter(session, f"K-{i}")["kwh_import_15m"] for i in range(channels)]
    rows = [
        DayArrays(c, FIRST + timedelta(days=d), 900, raw=np.full(96, 0.5), values=np.full(96, 0.5),
                  flags=np.zeros(96, np.uint16), version=0, vee_status="raw")
        for c in ids for d in range(days)
    ]  # fmt: skip
    MeasurementStore(session).save(rows, reason="ingest")
    session.commit()
    return ids


def test_load_days_returns_exactly_the_keys_asked_for(session):
    ids = _stored(session, 6, 5)
    # a sparse set: pairs whose channels and days, crossed, would name more rows than asked
    wanted = [(ids[0], FIRST), (ids[1], FIRST + timedelta(days=1)), (ids[5], FIRST + timedelta(days=4)),
              (ids[2], FIRST + timedelta(days=9)), (99999, FIRST)]  # fmt: skip
    found = MeasurementStore(session).load_days(wanted)
    assert sorted(found) == sorted(wanted[:3])
    assert all(found[k].channel_id == k[0] and found[k].day == k[1] for k in found)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_on_sqlite_keys_are_searched_in_the_primary_key_not_scanned(session):
    ids = _stored(session, 4, 3)
    statements: list[tuple[str, object]] = []
    engine = session.get_bind()

    def seen(conn, cursor, statement, parameters, context, executemany):
        if "FROM channel_day" in statement and not executemany:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        store = MeasurementStore(session)
        days = list(store.load_days([(ids[0], FIRST), (ids[3], FIRST + timedelta(days=2))]).values())
        store.save(days, reason="edit")  # the version check and the copy to history
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(statements) >= 3
    raw = session.connection().connection.driver_connection
    for statement, parameters in statements:
        plan = " | ".join(row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters))
        assert "SCAN channel_day" not in plan, (statement, plan)
