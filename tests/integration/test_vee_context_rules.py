"""VEE in the service: outages, register sum check, duplicate receipts, inactive meters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
from sqlalchemy import select

from meter2cash.core.quality import Quality
from meter2cash.mdm.models import Channel, Meter, MeterEvent, RegisterRead, VeeFinding
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.vee.service import run_vee

DAY = date(2026, 3, 10)
START = datetime(2026, 3, 10, tzinfo=UTC)


def _meter(session, serial="M-9"):
    rts = ensure_catalogue(session)
    meter = Meter(serial=serial)
    session.add(meter)
    session.flush()
    ch = Channel(meter_id=meter.id, reading_type_id=rts["kwh_import_15m"].id)
    reg = Channel(meter_id=meter.id, reading_type_id=rts["kwh_import_register"].id)
    session.add_all([ch, reg])
    session.flush()
    return meter.id, ch.id, reg.id


def _merge(session, cid, values):
    ok = ~np.isnan(values)
    MeasurementStore(session).merge({(cid, DAY): (np.flatnonzero(ok), values[ok])}, {cid: 900})


def _findings(session, run_id):
    rows = session.scalars(select(VeeFinding).where(VeeFinding.run_id == run_id).order_by(VeeFinding.id))
    return [(f.rule, f.channel_id, f.first_slot, f.slot_count) for f in rows]


def test_zeros_and_gaps_inside_a_recorded_outage(session):
    mid, cid, _ = _meter(session)
    v = np.full(96, 0.25) + 0.001 * np.arange(96)
    v[20:44] = 0.0  # 6 h of zeros during an outage 05:00-11:00
    v[44:48] = np.nan  # and nothing received in the outage's last hour
    v[60:84] = 0.0  # 6 h of zeros without an outage
    _merge(session, cid, v)
    session.add_all(
        [
            MeterEvent(meter_id=mid, occurred_at=START + timedelta(hours=5), code="101"),
            MeterEvent(meter_id=mid, occurred_at=START + timedelta(hours=12), code="102"),
        ]
    )
    session.commit()
    res = run_vee(session, start=START, end=START + timedelta(days=1))
    session.commit()
    zero_runs = [f for f in _findings(session, res.run_id) if f[0] == "vee.zero_run"]
    assert zero_runs == [("vee.zero_run", cid, 60, 24)]  # the outage's zeros are valid
    day = MeasurementStore(session).load_days([(cid, DAY)])[(cid, DAY)]
    assert (day.flags[20:48] & Quality.OUTAGE).all() and not (day.flags[:20] & Quality.OUTAGE).any()
    np.testing.assert_array_equal(day.values[44:48], 0.0)  # no supply, no consumption
    assert res.estimated_by_method["outage_zero"] == 4


def test_sum_check_against_midnight_register_reads(session):
    _, cid, rid = _meter(session)
    _merge(session, cid, np.full(96, 0.1))  # 9.6 kWh in the day
    session.add_all(
        [
            RegisterRead(channel_id=rid, read_at=START, value=1000.0),
            RegisterRead(channel_id=rid, read_at=START + timedelta(days=1), value=1012.0),
            RegisterRead(channel_id=rid, read_at=START + timedelta(hours=12), value=999.0),  # went back
        ]
    )
    session.commit()
    res = run_vee(session, start=START, end=START + timedelta(days=1))
    found = _findings(session, res.run_id)
    assert ("vee.sum_check", cid, 0, 96) in found
    assert ("vee.register_decrease", rid, 0, 0) in found
    data = session.scalars(select(VeeFinding.data).where(VeeFinding.rule == "vee.sum_check")).one()
    assert data["register_advance"] == 12.0 and data["interval_sum"] == 9.6


def test_a_value_received_twice_differently_is_a_duplicate(session):
    _, cid, _ = _meter(session)
    v = 0.2 + 0.01 * np.sin(np.arange(96))
    _merge(session, cid, v)
    session.commit()
    MeasurementStore(session).merge({(cid, DAY): (np.array([5]), np.array([0.9]))}, {cid: 900})
    session.commit()
    res = run_vee(session, start=START, end=START + timedelta(days=1))
    assert ("vee.duplicate_imd", cid, 5, 1) in _findings(session, res.run_id)
    day = MeasurementStore(session).load_days([(cid, DAY)])[(cid, DAY)]
    assert day.flags[5] & Quality.DUPLICATE and not day.flags[6] & Quality.DUPLICATE


def test_tou_tier_registers_must_sum_to_the_total_register(session):
    rts = ensure_catalogue(session)
    _, cid, rid = _meter(session)
    mid = session.get(Channel, cid).meter_id
    tiers = []
    for t in (1, 2, 3):
        ch = Channel(meter_id=mid, reading_type_id=rts[f"kwh_import_register_t{t}"].id)
        session.add(ch)
        session.flush()
        tiers.append(ch.id)
    day2 = DAY + timedelta(days=1)
    v = np.full(96, 0.1)  # 9.6 kWh a day
    MeasurementStore(session).merge(
        {(cid, DAY): (np.arange(96), v), (cid, day2): (np.arange(96), v)}, {cid: 900}
    )
    midnights = [START + timedelta(days=k) for k in range(3)]
    total = [1000.0, 1009.6, 1019.2]
    # day 1: tiers 2.0 + 4.6 + 3.0 = 9.6 agree; day 2: 2.0 + 4.6 + 2.0 = 8.6 against 9.6
    per_tier = {
        tiers[0]: [100.0, 102.0, 104.0],
        tiers[1]: [200.0, 204.6, 209.2],
        tiers[2]: [300.0, 303.0, 305.0],
    }
    reads = [
        RegisterRead(channel_id=rid, read_at=at, value=x) for at, x in zip(midnights, total, strict=True)
    ]
    for tid, xs in per_tier.items():
        reads += [
            RegisterRead(channel_id=tid, read_at=at, value=x) for at, x in zip(midnights, xs, strict=True)
        ]
    session.add_all(reads)
    session.commit()
    # the tier registers are no total: the interval sum still agrees with the total register
    res = run_vee(session, start=START, end=START + timedelta(days=2))
    session.commit()
    found = _findings(session, res.run_id)
    assert not [f for f in found if f[0] == "vee.sum_check"]
    tou = session.scalars(select(VeeFinding).where(VeeFinding.rule == "vee.tou_sum_check")).all()
    assert [(f.channel_id, f.day, f.action) for f in tou] == [(rid, day2, "flag")]
    assert tou[0].data == {
        "register_advance": 9.6,
        "tou_sum": 8.6,
        "difference": -1.0,
        "tiers": {"1": 2.0, "2": 4.6, "3": 2.0},
    }
    assert res.findings_by_rule["vee.tou_sum_check"] == {"findings": 1, "intervals": 0}
