"""The ingest service on both databases: idempotency, late data, changes, bad records, registers, events."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime

import numpy as np
from sqlalchemy import func, select

from conftest import make_meter
from meter2cash.events.models import OutboxMessage
from meter2cash.mdm.ingest import ingest_bytes, ingest_paths
from meter2cash.mdm.models import ChannelDay, MeterEvent, RawBatch, RegisterRead
from meter2cash.mdm.store import MeasurementStore

HEADER = "meter,channel,start,value\n"
T0 = datetime(2026, 10, 1, tzinfo=UTC)
DAY1 = date(2026, 10, 1)


def csv(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


def day_raw(session, channel_id: int, day: date = DAY1) -> np.ndarray:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return (
        MeasurementStore(session).read_window([channel_id], start, start.replace(day=day.day + 1), 900).raw[0]
    )


def test_same_file_twice_changes_nothing_and_says_so(session):
    cid = make_meter(session, "M1")["kwh_import_15m"]
    data = csv("M1,kwh_import_15m,2026-10-01T00:00:00Z,1.5", "M1,kwh_import_15m,2026-10-01T00:15:00Z,2")
    first = ingest_bytes(session, data, filename="a.csv", source="hes")
    session.commit()
    assert (first.duplicate_file, first.intervals_new, first.channel_days_written) == (False, 2, 1)
    second = ingest_bytes(session, data, filename="copy.csv")
    session.commit()
    assert second.duplicate_file and second.batch_id == first.batch_id
    assert (second.intervals_new, second.channel_days_written, second.rows_accepted) == (0, 0, 2)
    assert (second.resent, second.rows_already_accepted, second.rows_rejected) == (True, 2, 0)
    assert session.scalar(select(func.count()).select_from(RawBatch)) == 1
    assert session.scalar(select(ChannelDay.version).where(ChannelDay.channel_id == cid)) == 1
    batch = session.get(RawBatch, first.batch_id)
    assert gzip.decompress(batch.payload) == data
    assert (batch.source, batch.rows_total, batch.rows_accepted) == ("hes", 2, 2)
    msgs = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "readings.received")).all()
    assert len(msgs) == 1 and msgs[0].payload["batch_id"] == first.batch_id
    assert msgs[0].payload["intervals_new"] == 2


def test_late_and_out_of_order_data_merge_into_the_day(session):
    cid = make_meter(session, "M1")["kwh_import_15m"]
    ingest_bytes(session, csv("M1,kwh_import_15m,2026-10-01T01:00:00Z,4"), filename="a.csv")
    session.commit()
    late = ingest_bytes(
        session,
        csv(
            "M1,kwh_import_15m,2026-10-01T00:30:00Z,3",
            "M1,kwh_import_15m,2026-10-01T00:00:00Z,1",
            "M1,kwh_import_15m,2026-10-01T01:00:00Z,4",  # repeat of the earlier file
            "M1,kwh_import_15m,2026-10-01T00:15:00Z,2",
        ),
        filename="b.csv",
    )
    session.commit()
    assert (late.intervals_new, late.intervals_duplicate, late.intervals_changed) == (3, 1, 0)
    np.testing.assert_allclose(day_raw(session, cid)[:5], [1, 2, 3, np.nan, 4])


def test_changed_value_replaces_the_old_one_and_history_keeps_it(session):
    cid = make_meter(session, "M1")["kwh_import_15m"]
    ingest_bytes(session, csv("M1,kwh_import_15m,2026-10-01T00:00:00Z,1"), filename="a.csv")
    session.commit()
    fix = ingest_bytes(session, csv("M1,kwh_import_15m,2026-10-01T00:00:00Z,1.25"), filename="b.csv")
    session.commit()
    assert (fix.intervals_changed, fix.intervals_new, fix.channel_days_written) == (1, 0, 1)
    assert day_raw(session, cid)[0] == 1.25
    hist = MeasurementStore(session).history(cid, DAY1)
    assert [h.version for h in hist] == [1]
    assert np.frombuffer(hist[0].raw_values, "<f8")[0] == 1.0


def test_unknown_meter_and_channel_are_reported_by_line_and_good_rows_stored(session):
    cid = make_meter(session, "M1")["kwh_import_15m"]
    r = ingest_bytes(
        session,
        csv(
            "M1,kwh_import_15m,2026-10-01T00:00:00Z,1",
            "NOPE,kwh_import_15m,2026-10-01T00:00:00Z,1",
            "M1,kwh_export_15m,2026-10-01T00:00:00Z,1",
            "M1,kwh_import_15m,2026-10-01T00:15:00Z,2",
        ),
        filename="a.csv",
    )
    session.commit()
    assert [(p.line, p.field, p.code) for p in r.problems] == [
        (3, "meter", "ingest.unknown_meter"),
        (4, "channel", "ingest.unknown_channel"),
    ]
    assert (r.rows_accepted, r.rows_rejected, r.intervals_new) == (2, 2, 2)
    np.testing.assert_allclose(day_raw(session, cid)[:2], [1, 2])
    stored = session.get(RawBatch, r.batch_id).problems
    assert [p["code"] for p in stored] == ["ingest.unknown_meter", "ingest.unknown_channel"]


def test_json_registers_and_events(session):
    ids = make_meter(session, "M1", {"kwh_import_15m": "1", "kwh_import_register": "10"})
    doc = {
        "source": "hes-json",
        "readings": [
            {"meter": "M1", "channel": "kwh_import_15m", "start": "2026-10-01T05:30:00+05:30",
             "interval_s": 900, "values": [1, None, 3]},
            {"meter": "M1", "channel": "kwh_import_15m", "start": "2026-10-01T01:00:00Z", "interval_s": 1800,
             "values": [1]},
        ],
        "registers": [
            {"meter": "M1", "channel": "kwh_import_register", "read_at": "2026-10-01T00:00:00Z",
             "value": 100.5},
            {"meter": "M1", "channel": "1.0.1.8.0.255", "read_at": "2026-10-02T00:00:00Z", "value": 101},
        ],
        "events": [
            {"meter": "M1", "occurred_at": "2026-10-01T03:00:00Z", "code": "101", "category": "power",
             "description": "power fail", "data": {"phase": "R"}},
            {"meter": "M404", "occurred_at": "2026-10-01T03:00:00Z", "code": "101"},
        ],
    }  # fmt: skip
    r = ingest_bytes(session, json.dumps(doc).encode(), filename="a.json")
    session.commit()
    assert r.format == "json" and (r.intervals_new, r.registers, r.events) == (2, 2, 1)
    assert {(p.line, p.field, p.code) for p in r.problems} == {
        (1, "readings[1].interval_s", "ingest.interval_mismatch"),
        (1, "events[1].meter", "ingest.unknown_meter"),
    }
    np.testing.assert_allclose(day_raw(session, ids["kwh_import_15m"])[:3], [1, np.nan, 3])
    reads = session.execute(
        select(RegisterRead.read_at, RegisterRead.value).order_by(RegisterRead.read_at)
    ).all()
    assert [v for _, v in reads] == [1005.0, 1010.0]  # multiplier 10
    assert reads[0][0] == T0
    ev = session.scalars(select(MeterEvent)).one()
    assert (ev.code, ev.category, ev.data, ev.batch_id) == ("101", "power", {"phase": "R"}, r.batch_id)
    assert session.get(RawBatch, r.batch_id).source == "hes-json"

    # The same reads again: registers duplicate, a changed register replaces, events are ignored.
    doc["registers"][1]["value"] = 102
    doc["source"] = "resend"
    again = ingest_bytes(session, json.dumps(doc).encode(), filename="b.json")
    session.commit()
    assert (again.registers, again.registers_duplicate, again.registers_changed) == (1, 1, 1)
    assert (again.events, again.events_duplicate, again.intervals_duplicate) == (0, 1, 2)
    assert sorted(session.scalars(select(RegisterRead.value))) == [1005.0, 1020.0]
    assert session.scalar(select(func.count()).select_from(MeterEvent)) == 1


def test_ingest_paths_commits_each_file_so_a_bad_file_loses_nothing(platform, tmp_path):
    with platform.sessions() as s:
        cid = make_meter(s, "M1")["kwh_import_15m"]
        s.commit()
    good = tmp_path / "good.csv"
    good.write_bytes(csv("M1,kwh_import_15m,2026-10-01T00:00:00Z,1"))
    bad = tmp_path / "bad.csv"
    bad.write_text("serial,when,kwh\n1,2,3\n")
    seen = []
    results = ingest_paths(platform.sessions, [good, bad, good], on_progress=lambda p, r: seen.append(p.name))
    assert seen == ["good.csv", "bad.csv", "good.csv"]
    assert results[0].intervals_new == 1 and results[0].error is None
    assert results[1].error["code"] == "ingest.bad_file" and "lacks" in results[1].error["message"]
    assert results[2].duplicate_file
    with platform.sessions() as s:
        assert day_raw(s, cid)[0] == 1
        assert s.scalar(select(func.count()).select_from(RawBatch)) == 1
