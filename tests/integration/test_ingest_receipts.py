"""Ingest is idempotent per accepted reading, not per file: the same bytes received again store
what is valid now and change nothing else; a file whose every reading was accepted says so."""

from __future__ import annotations

import gzip
import uuid
from datetime import UTC, date, datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from conftest import make_meter
from meter2cash.mdm.ingest import ingest_bytes
from meter2cash.mdm.models import Channel, ChannelDay, Meter, RawBatch, ReadingType, RegisterRead
from meter2cash.mdm.store import MeasurementStore

HEADER = "meter,channel,start,value\n"
T0 = datetime(2026, 10, 1, tzinfo=UTC)
DAY1 = date(2026, 10, 1)
RECEIVED = datetime(2026, 10, 2, tzinfo=UTC)


def csv(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


def raw(session, channel_id: int) -> np.ndarray:
    return MeasurementStore(session).read_window([channel_id], T0, T0 + timedelta(days=1), 900).raw[0]


def version(session, channel_id: int) -> int | None:
    return session.scalar(select(ChannelDay.version).where(ChannelDay.channel_id == channel_id))


def test_unknown_meter_then_loaded_then_the_same_bytes_store_its_rows(session):
    data = csv(
        "M1,kwh_import_15m,2026-10-01T00:00:00Z,1",
        "M9,kwh_import_15m,2026-10-01T00:00:00Z,5",
        "M9,kwh_import_15m,2026-10-01T00:15:00Z,6",
    )
    m1 = make_meter(session, "M1")["kwh_import_15m"]
    first = ingest_bytes(session, data, filename="a.csv", received_at=RECEIVED)
    session.commit()
    assert [(p.line, p.code) for p in first.problems] == [
        (3, "ingest.unknown_meter"),
        (4, "ingest.unknown_meter"),
    ]
    assert (first.rows_accepted, first.rows_rejected, first.resent) == (1, 2, False)

    again = ingest_bytes(session, data, filename="a.csv", received_at=RECEIVED)  # meter still unknown
    session.commit()
    assert (again.duplicate_file, again.resent, again.rows_rejected, len(again.problems)) == (
        False,
        True,
        2,
        2,
    )
    assert (again.rows_already_accepted, again.intervals_new, again.channel_days_written) == (1, 0, 0)

    m9 = make_meter(session, "M9")["kwh_import_15m"]  # the meter is loaded
    session.commit()
    third = ingest_bytes(session, data, filename="a.csv", received_at=RECEIVED)
    session.commit()
    assert (third.duplicate_file, third.problems, third.rows_rejected) == (False, [], 0)
    assert (third.intervals_new, third.intervals_duplicate, third.rows_already_accepted) == (2, 0, 1)
    assert third.batch_id == first.batch_id
    np.testing.assert_array_equal(raw(session, m9)[:2], [5, 6])
    assert (version(session, m1), version(session, m9)) == (1, 1)  # M1's day was not written again

    fourth = ingest_bytes(session, data, filename="a.csv", received_at=RECEIVED)
    session.commit()
    assert fourth.duplicate_file and fourth.problems == []
    assert (fourth.rows_accepted, fourth.rows_already_accepted, fourth.intervals_new) == (3, 3, 0)

    batch = session.scalars(select(RawBatch)).one()  # the raw file kept once, for audit
    assert gzip.decompress(batch.payload) == data
    assert (batch.receipts, batch.rows_accepted, batch.rows_rejected, batch.problems) == (4, 3, 0, [])


def test_a_resend_does_not_undo_a_later_correction(session):
    m1 = make_meter(session, "M1")["kwh_import_15m"]
    first = csv("M1,kwh_import_15m,2026-10-01T00:00:00Z,1", "M9,kwh_import_15m,2026-10-01T00:00:00Z,5")
    ingest_bytes(session, first, filename="a.csv", received_at=RECEIVED)
    fix = ingest_bytes(session, csv("M1,kwh_import_15m,2026-10-01T00:00:00Z,1.5"), filename="fix.csv")
    session.commit()
    assert fix.intervals_changed == 1 and version(session, m1) == 2
    again = ingest_bytes(session, first, filename="a.csv", received_at=RECEIVED)
    session.commit()
    assert (again.intervals_changed, again.rows_already_accepted, again.rows_rejected) == (0, 1, 1)
    assert raw(session, m1)[0] == 1.5 and version(session, m1) == 2


def test_registers_and_events_of_a_resend(session):
    data = (
        b'{"registers": [{"meter": "M9", "channel": "kwh_import_register", "read_at": "2026-10-01T00:00:00Z",'
        b' "value": 10}], "events": [{"meter": "M9", "occurred_at": "2026-10-01T01:00:00Z", "code": "101"}]}'
    )
    first = ingest_bytes(session, data, filename="r.json", received_at=RECEIVED)
    assert first.rows_rejected == 2
    make_meter(session, "M9", {"kwh_import_register": "1"})
    again = ingest_bytes(session, data, filename="r.json", received_at=RECEIVED)
    assert (again.registers, again.events, again.rows_rejected) == (1, 1, 0)
    third = ingest_bytes(session, data, filename="r.json", received_at=RECEIVED)
    assert third.duplicate_file and (third.registers, third.events) == (0, 0)
    assert session.scalar(select(func.count()).select_from(RegisterRead)) == 1


def test_a_batch_stored_before_readings_were_recorded_only_fills_gaps_on_resend(session):
    m1 = make_meter(session, "M1")["kwh_import_15m"]
    data = csv("M1,kwh_import_15m,2026-10-01T00:00:00Z,1", "M1,kwh_import_15m,2026-10-01T00:15:00Z,2",
               "M9,kwh_import_15m,2026-10-01T00:00:00Z,5")  # fmt: skip
    r = ingest_bytes(session, data, filename="a.csv", received_at=RECEIVED)
    session.execute(RawBatch.__table__.update().values(accepted=None))  # as stored by an older release
    ingest_bytes(session, csv("M1,kwh_import_15m,2026-10-01T00:00:00Z,1.5"), filename="fix.csv")
    session.commit()
    again = ingest_bytes(session, data, filename="a.csv", received_at=RECEIVED)
    session.commit()
    assert again.batch_id == r.batch_id and again.rows_rejected == 1
    assert (again.intervals_changed, again.intervals_duplicate, again.intervals_new) == (0, 2, 0)
    np.testing.assert_array_equal(raw(session, m1)[:2], [1.5, 2])


# --- property: ingest twice = ingest once ------------------------------------------------------

#: A row: meter (0 known from the start, 1 loaded later, 2 never), channel (0 interval, 1
#: register), slot, value (index into VALUES; 1e32 kWh is impossible).
VALUES = (0.25, 1.0, 2.5, 1e32)
rows = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 1), st.integers(0, 5), st.integers(0, len(VALUES) - 1)),
    min_size=1,
    max_size=25,
)
CHANNELS = ("kwh_import_15m", "kwh_import_register")


def _file(tag: str, items: list[tuple[int, int, int, int]]) -> bytes:
    lines = [
        f"{tag}M{m},{CHANNELS[c]},{(T0 + timedelta(minutes=15 * s)).isoformat()},{VALUES[v]}"
        for m, c, s, v in items
    ]
    return csv(*lines)


def where(result) -> list[tuple[int | None, str | None, str]]:
    return [(p.line, p.field, p.code) for p in result.problems]


def _load(session, tag: str, meter: int) -> None:
    make_meter(session, f"{tag}M{meter}", {code: "1" for code in CHANNELS})


def _state(session, tag: str) -> dict[str, object]:
    """Everything stored for the meters of ``tag``: channel-days (version, raw) and registers."""
    stmt = (
        select(Channel.id, Meter.serial, ReadingType.code)
        .join(Meter, Meter.id == Channel.meter_id)
        .join(ReadingType, ReadingType.id == Channel.reading_type_id)
        .where(Meter.serial.like(f"{tag}M%"))
    )
    name = {cid: (serial.removeprefix(tag), code) for cid, serial, code in session.execute(stmt)}
    days = session.execute(
        select(ChannelDay.channel_id, ChannelDay.day, ChannelDay.version, ChannelDay.raw_values).where(
            ChannelDay.channel_id.in_(name)
        )
    ).all()
    regs = session.execute(
        select(RegisterRead.channel_id, RegisterRead.read_at, RegisterRead.value).where(
            RegisterRead.channel_id.in_(name)
        )
    ).all()
    return {
        "days": sorted((name[c], d, v, bytes(b)) for c, d, v, b in days),
        "registers": sorted((name[c], t, x) for c, t, x in regs),
    }


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=rows, b=rows)
def test_ingest_twice_is_ingest_once(session, a, b):
    tags = {k: f"{k}{uuid.uuid4().hex[:6]}" for k in ("once", "twice", "story", "loaded", "aba", "ab")}

    def send(tag: str, items: list[tuple[int, int, int, int]]):
        return ingest_bytes(session, _file(tag, items), filename="p.csv", received_at=RECEIVED)

    # the same bytes twice = once, and the second receipt says what it did
    _load(session, tags["once"], 0)
    _load(session, tags["twice"], 0)
    once = send(tags["once"], a)
    send(tags["twice"], a)
    twice = send(tags["twice"], a)
    assert _state(session, tags["once"]) == _state(session, tags["twice"])
    assert twice.resent and twice.rows_rejected == once.rows_rejected
    assert (twice.intervals_new, twice.intervals_changed, twice.registers, twice.channel_days_written) == (
        0,
    ) * 4
    assert twice.duplicate_file == (once.rows_rejected == 0)
    assert [(p.line, p.field, p.code) for p in twice.problems] == [
        (p.line, p.field, p.code) for p in once.problems
    ]

    # unknown meter -> loaded -> the same bytes = the meter loaded before the file came
    _load(session, tags["story"], 0)
    send(tags["story"], a)
    _load(session, tags["story"], 1)
    later = send(tags["story"], a)
    _load(session, tags["loaded"], 0)
    _load(session, tags["loaded"], 1)
    direct = send(tags["loaded"], a)
    assert _state(session, tags["story"]) == _state(session, tags["loaded"])
    assert later.rows_rejected == direct.rows_rejected

    # a later file is not undone by a re-send of an earlier one: A, B, A = A, B
    for tag, files in ((tags["aba"], (a, b, a)), (tags["ab"], (a, b))):
        _load(session, tag, 0)
        for items in files:
            send(tag, items)
    assert _state(session, tags["aba"]) == _state(session, tags["ab"])
    session.commit()
