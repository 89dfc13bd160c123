"""Window reads: the PostgreSQL per-channel path and the row path give the same arrays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from meter2cash.core.quality import Quality
from meter2cash.mdm.models import Channel, Meter
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import DayArrays, MeasurementStore


def _fleet(session, n: int, days: int, rng: np.random.Generator) -> list[int]:
    rts = ensure_catalogue(session)
    ids = []
    for i in range(n):
        m = Meter(serial=f"W-{i}")
        session.add(m)
        session.flush()
        ch = Channel(meter_id=m.id, reading_type_id=rts["kwh_import_15m"].id)
        session.add(ch)
        session.flush()
        ids.append(ch.id)
    out = []
    for cid in ids:
        for d in range(days):
            if rng.random() < 0.2:
                continue  # a day never received
            raw = rng.gamma(2.0, 0.3, 96)
            raw[rng.random(96) < 0.05] = np.nan
            values = np.where(np.isnan(raw), 0.25, raw)
            flags = np.where(np.isnan(raw), Quality.ESTIMATED, 0).astype(np.uint16)
            out.append(
                DayArrays(
                    cid, date(2026, 10, 1) + timedelta(days=d), 900, raw=raw, values=values,
                    flags=flags, version=0, vee_status="validated",
                )
            )  # fmt: skip
    MeasurementStore(session).save(out, reason="ingest")
    session.commit()
    return ids


@pytest.mark.parametrize("include_raw", [True, False])
def test_binary_copy_read_equals_the_row_read(db_url, session, monkeypatch, include_raw):
    ids = _fleet(session, 7, 5, np.random.default_rng(4))
    store = MeasurementStore(session)
    # some days at a later version, so that the per-channel version sums differ
    edited = list(store.load_days([(ids[0], date(2026, 10, 2)), (ids[2], date(2026, 10, 3))]).values())
    for day in edited:
        day.values = day.values + 1.0
    store.save(edited, reason="edit")
    session.commit()
    # a window that starts and ends inside days, with a channel that has no data at all
    start, end = datetime(2026, 9, 30, 20, 15, tzinfo=UTC), datetime(2026, 10, 5, 3, 45, tzinfo=UTC)
    wanted = [ids[3], 9999, *ids[:3], *ids[4:]]
    fast = store.read_window(wanted, start, end, 900, include_raw=include_raw)
    grouped = store._grouped_reader()
    if db_url.startswith("postgresql"):  # one row per channel with data
        rows = grouped(wanted, date(2026, 9, 30), date(2026, 10, 5), 900, include_raw)
        assert len(rows) == 7 and sum(len(r[3]) for r in rows) == len(fast.versions)
    else:
        assert grouped is None
    monkeypatch.setattr(MeasurementStore, "_grouped_reader", lambda self: None)
    slow = store.read_window(wanted, start, end, 900, include_raw=include_raw)
    np.testing.assert_array_equal(fast.values, slow.values)
    np.testing.assert_array_equal(fast.flags, slow.flags)
    np.testing.assert_array_equal(fast.raw, slow.raw)
    assert fast.versions == slow.versions and len(fast.versions) > 20
    some = [ids[0], ids[2], 9999]
    assert {c: sorted(d) for c, d in fast.days_of(some).items()} == {
        c: sorted(d) for c, d in slow.days_of(some).items()
    }
    assert fast.days_of([9999]) == {9999: []}
    assert len(fast.days_of([ids[0]])[ids[0]]) == sum(c == ids[0] for c, _ in fast.versions) > 0
    totals = fast.version_totals()
    assert totals == slow.version_totals() and 9999 not in totals
    assert {cid: t for cid, t in totals.items() if t[1] != t[0]} == {
        cid: (n, n + 1) for cid, (n, _) in totals.items() if cid in (ids[0], ids[2])
    }
    assert np.isnan(fast.values[1]).all() and (fast.flags[1] == Quality.MISSING).all()
    assert fast.values.shape == (8, (end - start) // timedelta(minutes=15))


def test_a_channel_stored_at_another_interval_is_named(db_url, session):
    ids = _fleet(session, 2, 1, np.random.default_rng(5))
    rts = ensure_catalogue(session)
    ch = Channel(meter_id=1, reading_type_id=rts["kwh_import_30m"].id)
    session.add(ch)
    session.flush()
    day = DayArrays(ch.id, date(2026, 10, 1), 1800, raw=np.ones(48), values=np.ones(48),
                    flags=np.zeros(48, np.uint16), version=0)  # fmt: skip
    MeasurementStore(session).save([day], reason="ingest")
    session.commit()
    with pytest.raises(ValueError, match=f"channel {ch.id} is stored at 1800 s"):
        MeasurementStore(session).read_window(
            [*ids, ch.id], datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC), 900
        )
