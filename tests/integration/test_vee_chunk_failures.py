"""No single row or channel stops a fleet-wide VEE run: a chunk that fails is rolled back, recorded
in the run with its channels and error, and the rest is validated; the command exits 1 naming it.

The poisoned rows are put into the store directly (not through ingest, which refuses them), so the
guard is tested on its own."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
from sqlalchemy import select, update
from typer.testing import CliRunner

from meter2cash.config import get_settings
from meter2cash.mdm.models import Channel, ChannelDay, Meter, VeeRun
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.vee.candidates import Candidate
from meter2cash.mdm.vee.service import plan_chunks, run_vee

DAY = date(2026, 3, 10)
SPD = 96


def _channels(session, n: int) -> list[int]:
    rts = ensure_catalogue(session)
    out = []
    for i in range(n):
        meter = Meter(serial=f"V{i}")
        session.add(meter)
        session.flush()
        ch = Channel(meter_id=meter.id, reading_type_id=rts["kwh_import_15m"].id)
        session.add(ch)
        session.flush()
        out.append(ch.id)
    return out


def _day(session, cid: int, day: date, gap: int = 10) -> None:
    values = 0.2 + 0.05 * np.sin(np.arange(SPD) / 9)
    values[gap] = np.nan  # one interval to estimate
    ok = ~np.isnan(values)
    MeasurementStore(session).merge({(cid, day): (np.flatnonzero(ok), values[ok])}, {cid: 900})


def _status(session, cid: int, day: date) -> str | None:
    stmt = select(ChannelDay.vee_status).where(ChannelDay.channel_id == cid, ChannelDay.day == day)
    return session.scalar(stmt)


def test_a_reading_dated_year_1_fails_alone_and_the_fleet_is_validated(session, db_url, monkeypatch):
    from meter2cash.cli import app

    ids = _channels(session, 4)
    for cid in ids:
        _day(session, cid, DAY)
    _day(session, ids[2], date(1, 1, 1))  # the poisoned row, as an older release accepted it
    session.commit()

    result = run_vee(session, start=datetime(1, 1, 1, tzinfo=UTC), end=datetime(2026, 3, 11, tzinfo=UTC))
    session.commit()
    assert result.channel_days == 4 and result.estimated_intervals == 4
    assert [(f["channels"], f["meters"], f["first_day"], f["last_day"]) for f in result.failures] == [
        ([ids[2]], ["V2/kwh_import_15m"], "0001-01-01", "0001-01-01")
    ]
    assert result.failures[0]["error"]["type"] == "OverflowError"
    assert result.failures[0]["error"]["code"] == "vee.chunk_failed"
    run = session.get(VeeRun, result.run_id)
    assert run.status == "partial" and run.failures == result.failures
    assert [_status(session, cid, DAY) for cid in ids] == ["validated"] * 4
    assert _status(session, ids[2], date(1, 1, 1)) == "raw"  # left pending, not lost

    # the plain command: the rest is validated, exit 1 naming the meter and the error
    for cid in ids:
        _day(session, cid, DAY + timedelta(days=1))
    session.commit()
    monkeypatch.setenv("M2C_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        out = runner.invoke(app, ["vee", "run"])
        assert out.exit_code == 1, out.output
        assert "vee.chunk_failed" in out.output and "V2/kwh_import_15m 0001-01-01..0001-01-01" in out.output
        assert "OverflowError" in out.output and "Traceback" not in out.output
        assert "4 channel-days" in out.output
        report = runner.invoke(app, ["vee", "report"])
        assert report.exit_code == 0 and "[partial]" in report.output and "V2/kwh_import_15m" in report.output
    finally:
        get_settings.cache_clear()
    session.expire_all()
    assert [_status(session, cid, DAY + timedelta(days=1)) for cid in ids] == ["validated"] * 4


def test_a_corrupt_channel_day_is_isolated_inside_its_chunk(session):
    ids = _channels(session, 7)
    for cid in ids:
        _day(session, cid, DAY)
    bad = ids[4]
    session.execute(  # 95 values where a 15-minute day has 96: unreadable
        update(ChannelDay).where(ChannelDay.channel_id == bad).values(raw_values=b"\0" * 8 * 95)
    )
    session.commit()
    result = run_vee(session, start=datetime(2026, 3, 10, tzinfo=UTC), end=datetime(2026, 3, 11, tzinfo=UTC))
    session.commit()
    assert [f["channels"] for f in result.failures] == [[bad]]
    assert result.failures[0]["error"]["type"] == "ValueError"
    assert result.channel_days == 6 and result.estimated_intervals == 6
    assert [_status(session, cid, DAY) for cid in ids] == ["raw" if c == bad else "validated" for c in ids]
    assert result.findings_by_rule["vee.missing_interval"] == {"findings": 6, "intervals": 6}


def test_a_fault_of_every_channel_is_recorded_without_splitting_to_single_channels(session, monkeypatch):
    import meter2cash.mdm.vee.service as service

    ids = _channels(session, 8)
    for cid in ids:
        _day(session, cid, DAY)
    session.commit()
    calls = []

    def broken(*args, **kwargs):
        calls.append(sorted(args[2]))
        raise RuntimeError("the estimator is broken")

    monkeypatch.setattr(service, "_process_chunk", broken)
    result = run_vee(session, start=datetime(2026, 3, 10, tzinfo=UTC), end=datetime(2026, 3, 11, tzinfo=UTC))
    assert calls == [ids, ids[:4], ids[4:]]  # the chunk, then its halves: both fail, so stop
    assert [f["channels"] for f in result.failures] == [ids[:4], ids[4:]]
    assert result.channel_days == 0 and session.get(VeeRun, result.run_id).status == "partial"


def _cand(cid: int, day: date) -> Candidate:
    return Candidate(cid, day, 900, None, True)


def test_plan_chunks_bounds_each_chunk_by_its_own_days(monkeypatch):
    import meter2cash.mdm.vee.service as service

    monkeypatch.setattr(service, "MAX_CHUNK_CHANNELS", 3)
    week = [DAY + timedelta(days=k) for k in range(7)]
    fleet = {cid: [_cand(cid, d) for d in week] for cid in range(1, 8)}
    chunks = plan_chunks(fleet, SPD, 14)
    assert [sorted(c) for c in chunks] == [[1, 2, 3], [4, 5, 6], [7]]

    fleet[5] = [_cand(5, date(1, 1, 1)), *fleet[5]]  # one stray day
    chunks = plan_chunks(fleet, SPD, 14)
    shapes = [(sorted(c), sorted({x.day for cs in c.values() for x in cs})[0]) for c in chunks]
    assert shapes == [([1, 2, 3], DAY), ([4], DAY), ([5], date(1, 1, 1)), ([6, 7], DAY), ([5], DAY)]

    monkeypatch.setattr(service, "MAX_CHUNK_SLOTS", 21 * SPD)  # 7 days + 14 history fit once
    chunks = plan_chunks({1: fleet[1], 2: fleet[2]}, SPD, 14)
    assert [sorted(c) for c in chunks] == [[1], [2]]
    long = {1: [_cand(1, DAY + timedelta(days=k)) for k in range(20)]}
    parts = plan_chunks(long, SPD, 14)
    assert [len(c[1]) for c in parts] == [7, 7, 6]
