"""Outage-aware VEE: inside a power outage recorded by event routing, zeros are valid and nothing
received is a zero flagged OUTAGE; no finding, no exception, no estimate. The same data without
the outage (or with a rule set that is not outage-aware) is judged as before."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
from sqlalchemy import select

from meter2cash.core.quality import Quality
from meter2cash.integration.event_routing import route_events
from meter2cash.mdm.events.models import EventEpisode
from meter2cash.mdm.ingest import ingest_bytes
from meter2cash.mdm.models import Channel, Meter, MeterEvent, VeeFinding
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.vee.models import VeeException
from meter2cash.mdm.vee.ruleset.schema import RuleSet
from meter2cash.mdm.vee.service import run_vee

DAY = date(2026, 3, 10)
START = datetime(2026, 3, 10, tzinfo=UTC)
OUTAGE_FROM, OUTAGE_TO = START + timedelta(hours=10), START + timedelta(hours=12)  # slots 40..47
OUT = Quality.OUTAGE
EST = Quality.ESTIMATED
SUS = Quality.SUSPECT


def rule_set(outage_aware: bool = True) -> RuleSet:
    """Zero runs of an hour flagged, gaps and 12 hours of estimates to a person: an outage's hours
    would trip them."""
    return RuleSet.from_mapping(
        {
            "name": "strict-gaps",
            "version": "1" if outage_aware else "2",
            "outage_aware": outage_aware,
            "rules": {
                "zero_run": {"action": "flag", "min_hours": 1.0},
                "missing_interval": {"action": "exception"},
                "prolonged_estimation": {"action": "exception", "max_hours": 12.0},
            },
            "estimation": {"learned": False},
        }
    )


def meter(session, serial: str) -> tuple[int, int]:
    rts = ensure_catalogue(session)
    m = Meter(serial=serial, status="installed")
    session.add(m)
    session.flush()
    ch = Channel(meter_id=m.id, reading_type_id=rts["kwh_import_15m"].id)
    session.add(ch)
    session.flush()
    return m.id, ch.id


def day_values() -> np.ndarray:
    """0.250, 0.251, ... with 10:00-11:00 received as zeros and 11:00-12:00 not received."""
    v = 0.25 + 0.001 * np.arange(96)
    v[40:44] = 0.0
    v[44:48] = np.nan
    return v


def merge(session, cid: int, values: np.ndarray, day: date = DAY) -> None:
    ok = ~np.isnan(values)
    MeasurementStore(session).merge({(cid, day): (np.flatnonzero(ok), values[ok])}, {cid: 900})


def ingest_events(session, events: list[tuple[str, datetime, int]]) -> None:
    doc = {
        "source": "hes-test",
        "events": [{"meter": m, "occurred_at": t.isoformat(), "code": str(c)} for m, t, c in events],
    }
    result = ingest_bytes(session, json.dumps(doc).encode(), filename="events.json", fmt="json")
    assert result.rows_rejected == 0, result.problems


def findings(session, run_id: int, cid: int) -> list[tuple[str, int, int, str]]:
    rows = session.scalars(
        select(VeeFinding)
        .where(VeeFinding.run_id == run_id, VeeFinding.channel_id == cid)
        .order_by(VeeFinding.id)
    )
    return [(f.rule, f.first_slot, f.slot_count, f.action) for f in rows]


def stored(session, cid: int, day: date = DAY):
    return MeasurementStore(session).load_days([(cid, day)])[(cid, day)]


def test_zeros_and_gaps_inside_a_routed_outage_are_valid_zeros_and_the_same_data_without_is_judged(session):
    _, out_cid = meter(session, "OUT-1")
    _, ctl_cid = meter(session, "CTL-1")
    merge(session, out_cid, day_values())
    merge(session, ctl_cid, day_values())
    ingest_events(session, [("OUT-1", OUTAGE_FROM, 101), ("OUT-1", OUTAGE_TO, 102)])
    session.commit()
    routed = route_events(session, now=OUTAGE_TO + timedelta(minutes=5))
    assert routed.dispositions["outage"] == 1 and routed.dispositions["restored"] == 1
    session.commit()

    res = run_vee(session, start=START, end=START + timedelta(days=1), rule_set=rule_set())
    session.commit()

    # the meter in the outage: no finding, no exception, the hour not received is 0 with OUTAGE
    assert findings(session, res.run_id, out_cid) == []
    day = stored(session, out_cid)
    expected_values = 0.25 + 0.001 * np.arange(96)
    expected_values[40:48] = 0.0
    np.testing.assert_allclose(day.values, expected_values)
    assert day.flags.tolist() == [0] * 40 + [int(OUT)] * 8 + [0] * 48
    assert np.isnan(day.raw[44:48]).all()  # what was received stays as it was

    # the same data without an outage: a zero run (flag), a gap (exception), interpolated
    assert findings(session, res.run_id, ctl_cid) == [
        ("vee.missing_interval", 44, 4, "exception"),
        ("vee.zero_run", 40, 4, "flag"),
    ]
    ctl = stored(session, ctl_cid)
    # linear from 0.0 (slot 43) to 0.298 (slot 48) over 5 steps
    np.testing.assert_allclose(ctl.values[40:48], [0, 0, 0, 0, 0.0596, 0.1192, 0.1788, 0.2384])
    assert ctl.flags[38:50].tolist() == [0, 0] + [int(SUS)] * 4 + [int(EST)] * 4 + [0, 0]

    exceptions = session.scalars(select(VeeException)).all()
    assert [(e.channel_id, e.rule, e.first_slot, e.slot_count) for e in exceptions] == [
        (ctl_cid, "vee.missing_interval", 44, 4)
    ]
    assert res.estimated_by_method["outage_zero"] == 4
    assert res.estimated_by_method["linear_interpolation"] == 4
    assert res.estimated_intervals == 4  # the outage's zeros are not estimates
    assert res.missing_after == 0


def test_a_rule_set_that_is_not_outage_aware_judges_the_outage_like_any_other_hour(session):
    _, cid = meter(session, "OUT-2")
    merge(session, cid, day_values())
    ingest_events(session, [("OUT-2", OUTAGE_FROM, 101), ("OUT-2", OUTAGE_TO, 102)])
    session.commit()
    route_events(session, now=OUTAGE_TO + timedelta(minutes=5))
    session.commit()

    res = run_vee(session, start=START, end=START + timedelta(days=1), rule_set=rule_set(outage_aware=False))
    session.commit()

    assert findings(session, res.run_id, cid) == [
        ("vee.missing_interval", 44, 4, "exception"),
        ("vee.zero_run", 40, 4, "flag"),
    ]
    day = stored(session, cid)
    np.testing.assert_allclose(day.values[44:48], [0.0596, 0.1192, 0.1788, 0.2384])
    assert day.flags[40:48].tolist() == [int(SUS)] * 4 + [int(EST)] * 4  # no OUTAGE
    assert res.estimated_by_method["outage_zero"] == 0 and res.estimated_intervals == 4
    assert len(session.scalars(select(VeeException)).all()) == 1


def test_an_outage_routed_from_a_failure_older_than_a_week_covers_the_day_until_restoration(session):
    """The episode opened ten days before and closed at 02:00: only routing knows that the first
    two hours of the day were without supply (the failure event is long before the day)."""
    out_mid, out_cid = meter(session, "OUT-3")
    ctl_mid, ctl_cid = meter(session, "CTL-3")
    began = START - timedelta(days=10)
    values = 0.25 + 0.001 * np.arange(96)
    values[:8] = np.nan  # nothing received 00:00-02:00
    for mid, cid in ((out_mid, out_cid), (ctl_mid, ctl_cid)):
        merge(session, cid, values)
        session.add(MeterEvent(meter_id=mid, occurred_at=began, code="101"))
    session.flush()
    failure = session.scalar(select(MeterEvent.id).where(MeterEvent.meter_id == out_mid))
    session.add(
        EventEpisode(
            meter_id=out_mid,
            event_id=101,
            kind="event.power_failure",
            rule="outage",
            opened_at=began,
            closed_at=START + timedelta(hours=2),
            occurrence_event_id=failure,
        )
    )
    session.commit()

    res = run_vee(session, start=START, end=START + timedelta(days=1), rule_set=rule_set())
    session.commit()

    assert findings(session, res.run_id, out_cid) == []
    day = stored(session, out_cid)
    assert day.values[:8].tolist() == [0.0] * 8
    assert day.flags.tolist() == [int(OUT)] * 8 + [0] * 88
    # without the episode the same gap is a missing interval to a person; with no history (no
    # value before it, no like-day, no complete day) nothing can estimate it
    assert findings(session, res.run_id, ctl_cid) == [("vee.missing_interval", 0, 8, "exception")]
    ctl = stored(session, ctl_cid)
    assert np.isnan(ctl.values[:8]).all() and ctl.flags[:8].tolist() == [int(Quality.MISSING)] * 8
    assert res.estimated_by_method["outage_zero"] == 8
    assert (res.estimated_intervals, res.missing_after) == (0, 8)


def test_an_outage_of_thirty_hours_is_no_prolonged_estimation(session):
    """Outage 10 March 02:00 to 11 March 08:00, nothing received in it. Without the outage the
    like-days of the two days estimate 10 March 08:00 to 11 March 02:00 (72 intervals, 18 h, over
    midnight): prolonged estimation; with it, every interval of the gap is an outage zero."""
    _, out_cid = meter(session, "OUT-4")
    _, ctl_cid = meter(session, "CTL-4")
    day2 = DAY + timedelta(days=1)
    v1 = 0.25 + 0.001 * np.arange(96)
    v2 = v1.copy()
    v1[8:] = np.nan
    v2[:32] = np.nan
    for cid in (out_cid, ctl_cid):
        merge(session, cid, v1)
        merge(session, cid, v2, day2)
    ingest_events(
        session, [("OUT-4", START + timedelta(hours=2), 101), ("OUT-4", START + timedelta(hours=32), 102)]
    )
    session.commit()
    route_events(session, now=START + timedelta(hours=33))
    session.commit()

    res = run_vee(session, start=START, end=START + timedelta(days=2), rule_set=rule_set())
    session.commit()

    assert findings(session, res.run_id, out_cid) == []
    assert stored(session, out_cid).flags.tolist() == [0] * 8 + [int(OUT)] * 88
    assert stored(session, out_cid, day2).flags.tolist() == [int(OUT)] * 32 + [0] * 64
    assert np.nansum(stored(session, out_cid).values[8:]) == 0.0

    rows = session.scalars(
        select(VeeFinding).where(VeeFinding.run_id == res.run_id, VeeFinding.channel_id == ctl_cid)
    ).all()
    assert sorted((f.rule, f.day, f.first_slot, f.slot_count) for f in rows) == [
        ("vee.missing_interval", DAY, 8, 88),
        ("vee.missing_interval", day2, 0, 32),
        ("vee.prolonged_estimation", DAY, 32, 64),
        ("vee.prolonged_estimation", day2, 0, 8),
    ]
    # 10 March 08:00.. from the 11th's values, 11 March ..02:00 from the 10th's; the rest missing
    miss, est = int(Quality.MISSING), int(EST)
    assert stored(session, ctl_cid).flags.tolist() == [0] * 8 + [miss] * 24 + [est] * 64
    assert stored(session, ctl_cid, day2).flags.tolist() == [est] * 8 + [miss] * 24 + [0] * 64
    assert res.estimated_by_method["outage_zero"] == 120
    assert res.estimated_intervals == 72


def test_an_estimate_made_before_the_outage_was_known_becomes_its_zero_when_validated_again(session):
    _, cid = meter(session, "OUT-5")
    merge(session, cid, day_values())
    session.commit()
    first = run_vee(session, start=START, end=START + timedelta(days=1), rule_set=rule_set())
    session.commit()
    assert stored(session, cid).flags[44:48].tolist() == [int(EST)] * 4

    ingest_events(session, [("OUT-5", OUTAGE_FROM, 101), ("OUT-5", OUTAGE_TO, 102)])
    session.commit()
    route_events(session, now=OUTAGE_TO + timedelta(minutes=5))
    session.commit()
    again = run_vee(
        session, start=START, end=START + timedelta(days=1), rule_set=rule_set(), only_pending=False
    )
    session.commit()

    assert findings(session, first.run_id, cid)[0] == ("vee.missing_interval", 44, 4, "exception")
    assert findings(session, again.run_id, cid) == [("vee.estimate_replaced", 44, 4, "info")]
    day = stored(session, cid)
    assert day.values[40:48].tolist() == [0.0] * 8
    assert day.flags.tolist() == [0] * 40 + [int(OUT)] * 8 + [0] * 48
