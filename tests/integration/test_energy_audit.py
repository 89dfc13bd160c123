"""The energy audit of a transformer and a feeder with interval data written through ingest;
expected figures worked out by hand."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import numpy as np
import pytest

from conftest import make_meter
from meter2cash.cis.parties.models import Premise, ServicePoint
from meter2cash.core.errors import InvalidInput
from meter2cash.core.quality import Quality
from meter2cash.mdm.energy_audit import energy_audit
from meter2cash.mdm.ingest import ingest_bytes
from meter2cash.mdm.models import DistributionTransformer, Feeder, Installation
from meter2cash.mdm.network import apply_network_change, assign_boundary_meter
from meter2cash.mdm.store import MeasurementStore

TZ = "Asia/Kolkata"
DAY = date(2026, 10, 5)
#: Local midnight of 5 October in Kolkata.
START = datetime(2026, 10, 4, 18, 30, tzinfo=UTC)
SINCE = datetime(2026, 1, 1, tzinfo=UTC)


def block(meter: str, values: list[float | None]) -> dict:
    return {"meter": meter, "channel": "kwh_import_15m", "start": "2026-10-04T18:30:00Z", "interval_s": 900,
            "values": values}  # fmt: skip


@pytest.fixture
def network(session):
    """Feeder F1 with feeder meter FM (2 kWh an interval); DT1 (boundary meter BM, 1 kWh an
    interval) feeding SP-A (0.25), SP-B (0.3), SP-C (0.2, four intervals missing, estimated later);
    DT2, unmetered, feeding SP-D (0.5)."""
    f1 = Feeder(code="F1")
    session.add(f1)
    session.flush()
    dt1, dt2 = (
        DistributionTransformer(code="DT1", feeder_id=f1.id),
        DistributionTransformer(code="DT2", feeder_id=f1.id),
    )
    premise = Premise(code="PR")
    session.add_all([dt1, dt2, premise])
    session.flush()
    channels = {}
    for serial, dt in (("CA", dt1), ("CB", dt1), ("CC", dt1), ("CD", dt2)):
        channels[serial] = make_meter(session, serial)["kwh_import_15m"]
        sp = ServicePoint(code=f"SP-{serial[1]}", premise_id=premise.id, dt_id=dt.id)
        session.add(sp)
        session.flush()
        session.add(
            Installation(meter_id=_meter_id(session, serial), service_point_id=sp.id, installed_at=SINCE)
        )
    for serial in ("BM", "FM"):
        channels[serial] = make_meter(session, serial)["kwh_import_15m"]
    session.flush()
    assign_boundary_meter(session, serial="BM", dt="DT1", at=SINCE)
    assign_boundary_meter(session, serial="FM", feeder="F1", at=SINCE)
    cc = [0.2] * 96
    for i in (10, 11, 12, 40):
        cc[i] = None
    doc = {"source": "hes", "readings": [
        block("BM", [1.0] * 96), block("FM", [2.0] * 96), block("CA", [0.25] * 96), block("CB", [0.3] * 96),
        block("CC", cc), block("CD", [0.5] * 96),
    ]}  # fmt: skip
    result = ingest_bytes(session, json.dumps(doc).encode(), filename="day.json", fmt="json")
    assert result.rows_rejected == 0
    session.commit()
    return channels


def _meter_id(session, serial: str) -> int:
    from meter2cash.mdm.models import Meter

    return session.query(Meter).filter_by(serial=serial).one().id


def _estimate_gaps(session, channel_id: int) -> None:
    """What VEE does to CC's gaps: 0.2 kWh each, flagged estimated."""
    store = MeasurementStore(session)
    days = store.days_between([channel_id], date(2026, 10, 4), date(2026, 10, 5))
    for d in days:
        gap = np.isnan(d.raw)
        gap[: 74 if d.day == date(2026, 10, 4) else 0] = False  # before local midnight: not ours
        if d.day == date(2026, 10, 5):
            gap[74:] = False  # after local midnight of the next day
        d.values = np.where(gap, 0.2, d.values)
        d.flags = np.where(gap, Quality.ESTIMATED, 0).astype(np.uint16)
        d.vee_status = "validated"
    store.save(days, reason="vee")
    session.commit()


def test_transformer_loss_by_hand(session, network):
    audit = energy_audit(session, DAY, DAY, tz=TZ, level="dt")
    rows = {r.node: r for r in audit.rows}
    dt1 = rows["DT1"]
    # in 96 × 1.0 = 96; consumers 96 × 0.25 + 96 × 0.3 + 92 × 0.2 = 24 + 28.8 + 18.4 = 71.2
    assert dt1.energy_in == pytest.approx(96.0)
    assert dt1.consumers == pytest.approx(71.2)
    assert dt1.loss == pytest.approx(24.8)
    assert dt1.loss_share == pytest.approx(24.8 / 96)
    assert dt1.in_completeness == 1.0
    assert dt1.consumers_completeness == pytest.approx(284 / 288)
    assert dt1.completeness == pytest.approx(380 / 384)
    assert dt1.consumers_estimated_share == 0.0
    assert dt1.service_points == 3
    dt2 = rows["DT2"]
    assert (dt2.energy_in, dt2.loss, dt2.loss_share) == (None, None, None)
    assert dt2.consumers == pytest.approx(48.0)
    assert dt2.period == "2026-10-05"

    _estimate_gaps(session, network["CC"])
    dt1 = {r.node: r for r in energy_audit(session, DAY, DAY, tz=TZ).rows}["DT1"]
    # the four gaps estimated at 0.2: consumers 72.0, of which 0.8 estimated
    assert dt1.consumers == pytest.approx(72.0)
    assert dt1.loss == pytest.approx(24.0)
    assert dt1.loss_share == pytest.approx(0.25)
    assert dt1.consumers_estimated_share == pytest.approx(0.8 / 72)
    assert dt1.in_estimated_share == 0.0
    assert dt1.estimated_share == pytest.approx(0.8 / 168)
    # estimates fill values, not receipts: completeness unchanged
    assert dt1.consumers_completeness == pytest.approx(284 / 288)


def test_feeder_level_and_months(session, network):
    f1 = energy_audit(session, DAY, DAY, tz=TZ, level="feeder").rows
    assert [r.node for r in f1] == ["F1"]
    # in 96 × 2 = 192; consumers 71.2 + 48 = 119.2
    assert f1[0].energy_in == pytest.approx(192.0)
    assert f1[0].consumers == pytest.approx(119.2)
    assert f1[0].loss == pytest.approx(72.8)
    assert f1[0].service_points == 4
    # a month over two days, only the first of which has data; the next day's intervals are due
    month = energy_audit(session, DAY, date(2026, 10, 6), tz=TZ, level="dt", by="month").rows
    dt1 = {r.node: r for r in month}["DT1"]
    assert dt1.period == "2026-10"
    assert dt1.energy_in == pytest.approx(96.0)
    assert dt1.in_completeness == pytest.approx(0.5)


def test_a_service_point_moving_transformer_counts_for_each_in_its_time(session, network):
    # SP-A moves to DT2 at 06:30 local (01:00 UTC): 26 of its intervals stay with DT1
    apply_network_change(session, link="service_point_dt", child="SP-A",
                         parent="DT2", effective_at=datetime(2026, 10, 5, 1, 0, tzinfo=UTC))  # fmt: skip
    session.commit()
    rows = {r.node: r for r in energy_audit(session, DAY, DAY, tz=TZ).rows}
    assert rows["DT1"].consumers == pytest.approx(26 * 0.25 + 28.8 + 18.4)
    assert rows["DT2"].consumers == pytest.approx(70 * 0.25 + 48.0)
    assert rows["DT2"].service_points == 2


def test_bad_requests_are_refused(session):
    for kwargs, code in (
        ({"level": "dcu"}, "audit.unknown_level"),
        ({"by": "week"}, "audit.unknown_by"),
    ):
        with pytest.raises(InvalidInput) as e:
            energy_audit(session, DAY, DAY, tz=TZ, **kwargs)
        assert e.value.code == code
    with pytest.raises(InvalidInput) as e:
        energy_audit(session, DAY, date(2026, 10, 1), tz=TZ)
    assert e.value.code == "audit.window_invalid"
    assert energy_audit(session, DAY, DAY, tz=TZ).rows == []
