"""Missed intervals found, re-acquired once, and the read success of a day, counted by hand."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from conftest import make_meter
from meter2cash.cis.parties.models import Premise, ServicePoint
from meter2cash.core.errors import InvalidInput
from meter2cash.mdm.acquisition import find_gaps, read_success, request_reacquisition
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.ingest import ingest_bytes
from meter2cash.mdm.models import DCU, DistributionTransformer, Feeder, Installation, Meter

START, END = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
AT = datetime(2026, 10, 2, 1, 0, tzinfo=UTC)


def block(meter: str, values: list[float | None]) -> dict:
    return {"meter": meter, "channel": "kwh_import_15m", "start": "2026-10-01T00:00:00Z", "values": values}


@pytest.fixture
def fleet(session):
    """M1, M2 on DCU1 (service points below DT1 on F1), M3 on DCU2 (at DT2 on F2), M4 on no DCU.
    M1 misses slots 10, 11 and 50 of 1 October; M4 delivered nothing."""
    f1, f2 = Feeder(code="F1"), Feeder(code="F2")
    session.add_all([f1, f2])
    session.flush()
    dt1, dt2 = (
        DistributionTransformer(code="DT1", feeder_id=f1.id),
        DistributionTransformer(code="DT2", feeder_id=f2.id),
    )
    session.add_all([dt1, dt2])
    session.flush()
    d1, d2 = DCU(code="DCU1", dt_id=dt1.id), DCU(code="DCU2", dt_id=dt2.id)
    premise = Premise(code="PR")
    session.add_all([d1, d2, premise])
    session.flush()
    for serial, dcu in (("M1", d1), ("M2", d1), ("M3", d2), ("M4", None)):
        make_meter(session, serial)
        m = session.query(Meter).filter_by(serial=serial).one()
        m.dcu_id = dcu.id if dcu else None
        if serial in ("M1", "M2"):
            sp = ServicePoint(code=f"SP-{serial}", premise_id=premise.id, dt_id=dt1.id)
            session.add(sp)
            session.flush()
            session.add(
                Installation(
                    meter_id=m.id, service_point_id=sp.id, installed_at=datetime(2026, 1, 1, tzinfo=UTC)
                )
            )
    session.flush()
    m1: list[float | None] = [0.1] * 96
    m1[10] = m1[11] = m1[50] = None
    doc = {"readings": [block("M1", m1), block("M2", [0.2] * 96), block("M3", [0.3] * 96)]}
    assert ingest_bytes(session, json.dumps(doc).encode(), filename="d.json", fmt="json").rows_rejected == 0
    session.commit()


def test_gaps_are_found_and_grouped(session, fleet):
    gaps = find_gaps(session, START, END)
    found = [(g.meter, g.channel, g.start, g.end, g.intervals) for g in gaps]
    assert found == [
        (
            "M1",
            "kwh_import_15m",
            datetime(2026, 10, 1, 2, 30, tzinfo=UTC),
            datetime(2026, 10, 1, 3, 0, tzinfo=UTC),
            2,
        ),
        (
            "M1",
            "kwh_import_15m",
            datetime(2026, 10, 1, 12, 30, tzinfo=UTC),
            datetime(2026, 10, 1, 12, 45, tzinfo=UTC),
            1,
        ),
        ("M4", "kwh_import_15m", START, END, 96),
    ]
    # a window inside the first gap, not on a day border
    inner = find_gaps(session, datetime(2026, 10, 1, 2, 45, tzinfo=UTC), datetime(2026, 10, 1, 4, tzinfo=UTC))
    assert [(g.meter, g.start, g.intervals) for g in inner] == [
        ("M1", datetime(2026, 10, 1, 2, 45, tzinfo=UTC), 1),
        ("M4", datetime(2026, 10, 1, 2, 45, tzinfo=UTC), 5),
    ]


def test_reacquire_commands_are_issued_once(session, fleet):
    gaps = [g for g in find_gaps(session, START, END) if g.meter == "M1"]
    first = request_reacquisition(session, gaps, at=AT)
    session.commit()
    cmds = session.scalars(select(MeterCommand).order_by(MeterCommand.id)).all()
    assert [(c.kind, c.status, c.params) for c in cmds] == [
        (
            "reacquire",
            "requested",
            {"channel": "kwh_import_15m", "from": "2026-10-01T02:30:00Z", "to": "2026-10-01T03:00:00Z"},
        ),
        (
            "reacquire",
            "requested",
            {"channel": "kwh_import_15m", "from": "2026-10-01T12:30:00Z", "to": "2026-10-01T12:45:00Z"},
        ),
    ]
    assert {c.meter_id for c in cmds} == {session.query(Meter).filter_by(serial="M1").one().id}
    again = request_reacquisition(session, find_gaps(session, START, END)[:2], at=AT)
    session.commit()
    assert [r.command_id for r in again] == [r.command_id for r in first]
    assert session.scalar(select(func.count()).select_from(MeterCommand)) == 2


def test_a_reacquisition_that_did_not_succeed_is_followed_by_another_up_to_three(session, fleet):
    from meter2cash.mdm.commands.service import apply_report

    gaps = [g for g in find_gaps(session, START, END) if g.meter == "M1"][:1]
    seen = []
    for outcome in ("timed_out", "failed", "failed"):
        (r,) = request_reacquisition(session, gaps, at=AT)
        seen.append(r.command_id)
        if outcome == "timed_out":  # a command still under way is the one asked for again
            assert request_reacquisition(session, gaps, at=AT)[0].command_id == r.command_id
        apply_report(session, command_id=r.command_id, status=outcome, at=AT)
        session.commit()
    assert len(set(seen)) == 3
    keys = session.scalars(select(MeterCommand.idempotency_key).order_by(MeterCommand.id)).all()
    base = f"reacq-m{gaps[0].meter_id}-2026-10-01T02:30:00Z-2026-10-01T03:00:00Z"
    assert keys == [base, f"{base}#2", f"{base}#3"]
    # three rounds: the last answer stands
    assert request_reacquisition(session, gaps, at=AT)[0].command_id == seen[-1]
    assert session.scalar(select(func.count()).select_from(MeterCommand)) == 3


def test_an_executed_reacquisition_is_not_asked_for_again(session, fleet):
    from meter2cash.mdm.commands.service import apply_report

    gaps = [g for g in find_gaps(session, START, END) if g.meter == "M1"][:1]
    (r,) = request_reacquisition(session, gaps, at=AT)
    for status in ("sent", "executed"):  # the meter had nothing more for the window
        apply_report(session, command_id=r.command_id, status=status, at=AT)
    assert request_reacquisition(session, gaps, at=AT)[0].command_id == r.command_id
    assert session.scalar(select(func.count()).select_from(MeterCommand)) == 1


def test_late_data_closes_the_gap(session, fleet):
    late = {"readings": [{"meter": "M1", "channel": "kwh_import_15m", "start": "2026-10-01T02:30:00Z",
                          "values": [0.1, 0.1]}]}  # fmt: skip
    ingest_bytes(session, json.dumps(late).encode(), filename="late.json", fmt="json")
    session.commit()
    assert [(g.meter, g.intervals) for g in find_gaps(session, START, END)] == [("M1", 1), ("M4", 96)]


def test_read_success_by_hand(session, fleet):
    report = read_success(session, date(2026, 10, 1), tz="UTC")
    dcus = {r.node: (r.expected, r.complete, r.share, r.meets_target) for r in report.dcus}
    # DCU1: M1 incomplete, M2 complete; DCU2: M3 complete; M4 below no DCU, nothing received
    assert dcus == {"DCU1": (2, 1, 50.0, False), "DCU2": (1, 1, 100.0, True), "(none)": (1, 0, 0.0, False)}
    feeders = {r.node: (r.expected, r.complete, r.share) for r in report.feeders}
    # M1, M2 through their service points' DT1 → F1; M3 through DCU2's DT2 → F2
    assert feeders == {"F1": (2, 1, 50.0), "F2": (1, 1, 100.0), "(none)": (1, 0, 0.0)}
    assert (report.total.expected, report.total.complete, report.total.share) == (4, 2, 50.0)
    assert report.target == Decimal("98.5")
    lenient = read_success(session, date(2026, 10, 1), tz="UTC", target=Decimal(50))
    assert [r.meets_target for r in lenient.dcus] == [False, True, True]
    assert lenient.total.meets_target is True
    # in Kolkata the local day starts at 18:30 UTC of 30 September: nothing was received before midnight UTC
    assert read_success(session, date(2026, 10, 1), tz="Asia/Kolkata").total.complete == 0


def test_bad_windows_are_refused(session):
    with pytest.raises(InvalidInput) as e:
        find_gaps(session, END, START)
    assert e.value.code == "acquisition.window_invalid"
    with pytest.raises(InvalidInput):
        read_success(session, date(2026, 10, 1), tz="UTC", target=Decimal(101))


def test_gaps_of_several_channels_over_one_window_are_one_command(session, fleet):
    from meter2cash.mdm.acquisition import Gap

    m1 = session.query(Meter).filter_by(serial="M1").one().id
    t0, t1 = datetime(2026, 10, 1, 2, 30, tzinfo=UTC), datetime(2026, 10, 1, 3, 0, tzinfo=UTC)
    gaps = [Gap(m1, "M1", 1, "kwh_import_15m", t0, t1, 2), Gap(m1, "M1", 2, "kvah_import_15m", t0, t1, 2)]
    done = request_reacquisition(session, gaps, at=AT)
    assert done[0].command_id == done[1].command_id
    cmd = session.get(MeterCommand, done[0].command_id)
    assert (cmd.idempotency_key, cmd.params["channel"]) == (
        f"reacq-m{m1}-2026-10-01T02:30:00Z-2026-10-01T03:00:00Z",
        "kvah_import_15m",  # the first of the channels, by name
    )
