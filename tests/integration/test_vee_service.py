from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from meter2cash.config import get_settings
from meter2cash.core.errors import NotFound
from meter2cash.core.quality import Quality
from meter2cash.events.models import OutboxMessage
from meter2cash.mdm.models import Channel, ChannelDay, Meter, VeeFinding, VeeRun
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.vee.ruleset.schema import RuleSet
from meter2cash.mdm.vee.service import findings_for, run_vee, vee_report

DAY = date(2026, 3, 10)  # a Tuesday
SPD = 96


def _channel(session, serial: str = "M-1", code: str = "kwh_import_15m") -> int:
    rts = ensure_catalogue(session)
    meter = Meter(serial=serial)
    session.add(meter)
    session.flush()
    ch = Channel(meter_id=meter.id, reading_type_id=rts[code].id)
    session.add(ch)
    session.flush()
    return ch.id


def _profile(day: date) -> np.ndarray:
    """A smooth daily shape that differs a little from day to day."""
    slot = np.arange(SPD)
    return 0.2 + 0.1 * np.sin(slot / SPD * 2 * np.pi) + 0.01 * (day.toordinal() % 7)


def _merge(session, cid: int, day: date, values: np.ndarray) -> None:
    ok = ~np.isnan(values)
    MeasurementStore(session).merge({(cid, day): (np.flatnonzero(ok), values[ok])}, {cid: 900})


def _window(day: date, days: int = 1) -> dict[str, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {"start": start, "end": start + timedelta(days=days)}


def _stored(session, cid: int, day: date):
    return MeasurementStore(session).load_days([(cid, day)])[(cid, day)]


def test_actual_data_replaces_an_estimate(session):
    cid = _channel(session)
    truth = _profile(DAY)
    received = truth.copy()
    received[40:44] = np.nan
    _merge(session, cid, DAY, received)
    session.commit()

    first = run_vee(session, **_window(DAY))
    session.commit()
    assert first.channel_days == 1 and first.estimated_by_method["linear_interpolation"] == 4
    day = _stored(session, cid, DAY)
    assert day.vee_status == "validated" and day.vee_run_id == first.run_id
    assert (day.flags[40:44] == Quality.ESTIMATED).all()
    np.testing.assert_allclose(day.values[40:44], np.linspace(truth[39], truth[44], 6)[1:5])
    assert np.isnan(day.raw[40:44]).all()  # the estimate never enters the raw values

    late = truth[40:44] + 0.5  # the real reads differ from the estimate
    MeasurementStore(session).merge({(cid, DAY): (np.arange(40, 44), late)}, {cid: 900})
    session.commit()
    assert _stored(session, cid, DAY).vee_status == "raw"

    second = run_vee(session, **_window(DAY))
    session.commit()
    day = _stored(session, cid, DAY)
    assert second.channel_days == 1 and second.estimated_intervals == 0
    np.testing.assert_allclose(day.values[40:44], late)
    assert (day.flags == 0).all()
    # each superseded version is kept with the reason it was superseded
    assert [h.reason for h in MeasurementStore(session).history(cid, DAY)] == ["vee", "ingest", "vee"]
    found = findings_for(session, cid, DAY)
    assert [(f["rule"], f["first_slot"], f["slot_count"]) for f in found] == [
        ("vee.estimate_replaced", 40, 4)
    ]
    # billing hears of it: one event per run listing the channel-days whose estimates were replaced
    event = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "vee.estimate_replaced")).one()
    assert event.payload == {
        "run_id": second.run_id,
        "intervals": 4,
        "channel_days": [{"channel_id": cid, "day": DAY.isoformat(), "intervals": 4}],
    }


def test_spike_is_rejected_estimated_and_raw_kept(session):
    cid = _channel(session)
    values = _profile(DAY)
    values[50] = 25.0
    values[60] = -1.0
    _merge(session, cid, DAY, values)
    session.commit()
    res = run_vee(session, **_window(DAY))
    session.commit()
    assert res.findings_by_rule["vee.interval_spike"] == {"findings": 1, "intervals": 1}
    assert res.findings_by_rule["vee.negative_consumption"] == {"findings": 1, "intervals": 1}
    day = _stored(session, cid, DAY)
    assert day.raw[50] == 25.0 and day.raw[60] == -1.0
    assert day.flags[50] == Quality.REJECTED | Quality.ESTIMATED
    assert 0 < day.values[50] < 1 and 0 < day.values[60] < 1
    found = findings_for(session, cid, DAY)
    spike = next(f for f in found if f["rule"] == "vee.interval_spike")
    assert (spike["first_slot"], spike["slot_count"], spike["action"]) == (50, 1, "reject")
    assert spike["data"]["value"] == 25.0


def test_long_gap_uses_like_days_and_only_pending_days_run(session):
    cid = _channel(session)
    history = [DAY - timedelta(days=7 * k) for k in (1, 2)]  # the same weekday, 1 and 2 weeks back
    for d in history:
        _merge(session, cid, d, _profile(d))
    session.commit()
    run_vee(session, **_window(DAY - timedelta(days=20), 20))
    session.commit()
    received = _profile(DAY)
    received[10:30] = np.nan  # 5 h: too long to interpolate
    _merge(session, cid, DAY, received)
    session.commit()

    res = run_vee(session, start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 4, 1, tzinfo=UTC))
    session.commit()
    assert res.channel_days == 1  # the history days were validated already
    assert {m: n for m, n in res.estimated_by_method.items() if n} == {"like_day_profile": 20}
    expected = np.mean([_profile(d)[10:30] for d in history], axis=0)
    np.testing.assert_allclose(_stored(session, cid, DAY).values[10:30], expected)
    assert res.findings_by_rule["vee.missing_interval"] == {"findings": 1, "intervals": 20}

    again = run_vee(session, **_window(DAY))
    assert again.channel_days == 0
    everything = run_vee(session, **_window(DAY), only_pending=False)
    assert everything.channel_days == 1


def test_gap_without_history_stays_missing(session):
    cid = _channel(session)
    received = _profile(DAY)
    received[80:] = np.nan  # trailing gap, nothing to estimate it from
    _merge(session, cid, DAY, received)
    session.commit()
    res = run_vee(session, **_window(DAY))
    assert res.missing_after == 16 and res.estimated_intervals == 0
    day = _stored(session, cid, DAY)
    assert (day.flags[80:] == Quality.MISSING).all() and (day.flags[:80] == 0).all()


def test_run_records_rule_set_findings_and_event(session):
    cid = _channel(session)
    export = _channel(session, "M-2", "kwh_export_15m")
    values = np.where(np.arange(SPD) < 40, -0.5, 0.0)  # negative, then a long zero run
    for c in (cid, export):
        _merge(session, c, DAY, values)
    session.commit()
    rs = RuleSet(name="strict", version="2026.1")
    res = run_vee(session, **_window(DAY), rule_set=rs, channel_ids=[cid, export])
    session.commit()
    run = session.get(VeeRun, res.run_id)
    assert (run.rule_set, run.rule_set_version, run.status) == ("strict", "2026.1", "completed")
    assert run.channel_days == 2 and run.findings == res.findings
    neg = session.scalars(select(VeeFinding).where(VeeFinding.rule == "vee.negative_consumption")).all()
    assert [f.channel_id for f in neg] == [cid]  # an export channel is not checked for negatives
    event = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "vee.completed")).one()
    assert event.payload["run_id"] == res.run_id and event.payload["channel_days"] == 2
    report = vee_report(session)
    assert report["run_id"] == res.run_id and report["rule_set"] == "strict"
    assert report["findings_by_rule"]["vee.zero_run"]["findings"] == 2
    assert report["findings_by_rule"]["vee.zero_run"]["action"] == "info"
    assert report["estimated_by_method"] == res.estimated_by_method
    with pytest.raises(NotFound):
        vee_report(session, res.run_id + 100)


def test_gap_across_midnight_is_split_per_day(session):
    cid = _channel(session)
    d1, d2 = DAY, DAY + timedelta(days=1)
    a, b = _profile(d1), _profile(d2)
    a[94:] = np.nan
    b[:2] = np.nan
    _merge(session, cid, d1, a)
    _merge(session, cid, d2, b)
    session.commit()
    res = run_vee(session, **_window(d1, 2))
    session.commit()
    assert res.estimated_by_method["linear_interpolation"] == 4  # one 4-interval gap over midnight
    rows = session.scalars(select(VeeFinding).order_by(VeeFinding.day)).all()
    assert [(r.day, r.first_slot, r.slot_count) for r in rows] == [(d1, 94, 2), (d2, 0, 2)]
    assert rows[0].data["run_intervals"] == 4


def test_cli_run_and_report(session, db_url, monkeypatch):
    from meter2cash.cli import app

    cid = _channel(session)
    values = _profile(DAY)
    values[5] = np.nan
    _merge(session, cid, DAY, values)
    session.commit()
    monkeypatch.setenv("M2C_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        out = runner.invoke(app, ["vee", "run", "--meter", "M-1"])
        assert out.exit_code == 0, out.output
        assert "vee.missing_interval" in out.output and "linear_interpolation" in out.output
        session.expire_all()
        assert (
            session.scalar(select(ChannelDay.vee_status).where(ChannelDay.channel_id == cid)) == "validated"
        )
        rep = runner.invoke(app, ["vee", "report"])
        assert rep.exit_code == 0 and "vee.missing_interval" in rep.output
        missing = runner.invoke(app, ["vee", "report", "--run", "999"])
        assert missing.exit_code == 2
    finally:
        get_settings.cache_clear()


def test_channels_are_processed_in_chunks_with_progress(session, monkeypatch):
    import meter2cash.mdm.vee.service as service

    monkeypatch.setattr(service, "MAX_CHUNK_CHANNELS", 1)
    ids = [_channel(session, f"M-{i}") for i in range(3)]
    for cid in ids:
        values = _profile(DAY)
        values[20 + cid] = np.nan
        _merge(session, cid, DAY, values)
    session.commit()
    seen: list[tuple[int, int]] = []
    res = run_vee(session, **_window(DAY), on_progress=lambda done, total: seen.append((done, total)))
    session.commit()
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert res.estimated_by_method["linear_interpolation"] == 3
    for cid in ids:
        day = _stored(session, cid, DAY)
        assert day.flags[20 + cid] == Quality.ESTIMATED and (np.delete(day.flags, 20 + cid) == 0).all()


def test_a_day_with_nothing_received_is_found_estimated_and_later_replaced(session):
    from meter2cash.cis.parties.models import Premise, ServicePoint
    from meter2cash.mdm.models import Installation

    cid = _channel(session)
    meter_id = session.get(Channel, cid).meter_id
    premise = Premise(code="PR-1")
    session.add(premise)
    session.flush()
    sp = ServicePoint(code="SP-1", premise_id=premise.id)
    session.add(sp)
    session.flush()
    session.add(
        Installation(meter_id=meter_id, service_point_id=sp.id, installed_at=datetime(2026, 1, 1, tzinfo=UTC))
    )
    days = [DAY - timedelta(days=k) for k in range(14, 0, -1)] + [DAY, DAY + timedelta(days=1)]
    for d in days:
        if d != DAY:  # the meter delivered nothing at all on DAY
            _merge(session, cid, d, _profile(d))
    session.commit()

    result = run_vee(session, start=_window(days[0])["start"], end=_window(days[-1])["end"])
    session.commit()
    assert result.channel_days == len(days)
    gap = [f for f in findings_for(session, cid, DAY) if f["rule"] == "vee.missing_interval"]
    assert [(f["first_slot"], f["slot_count"]) for f in gap] == [(0, SPD)]
    day = _stored(session, cid, DAY)
    assert np.isnan(day.raw).all() and not np.isnan(day.values).any()
    assert ((day.flags & Quality.ESTIMATED) != 0).all()

    # Nothing is expected before the installation or for a meter not installed.
    other = _channel(session, serial="M-2")
    _merge(session, other, DAY - timedelta(days=1), _profile(DAY))
    session.commit()
    again = run_vee(session, **_window(DAY))
    session.commit()
    assert again.channel_days == 0

    _merge(session, cid, DAY, _profile(DAY))  # the day arrives late
    session.commit()
    late = run_vee(session, **_window(DAY))
    session.commit()
    day = _stored(session, cid, DAY)
    assert late.channel_days == 1 and late.estimated_intervals == 0
    np.testing.assert_allclose(day.values, _profile(DAY))
    assert (day.flags == 0).all()
