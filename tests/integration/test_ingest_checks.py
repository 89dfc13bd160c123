"""Ingest refuses what cannot be a reading: times outside the meter's installation or the platform's
window, and values outside the plausibility limits of the reading type. Each refused row is a
problem on its line and field; the good rows of the same file are stored."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import numpy as np
import pytest
from sqlalchemy import select

from conftest import make_meter
from meter2cash.audit.models import AuditEntry
from meter2cash.core.errors import Conflict, InvalidInput
from meter2cash.mdm.ingest import ingest_bytes
from meter2cash.mdm.models import Channel, Installation, MeterEvent, RegisterRead
from meter2cash.mdm.reading_limits import current_limits, parse_limits, put_limits
from meter2cash.mdm.store import MeasurementStore

HEADER = "meter,channel,start,value\n"
RECEIVED = datetime(2026, 10, 2, 12, tzinfo=UTC)


def csv(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


def by_line(result) -> dict[int, tuple[str, str]]:
    return {p.line: (p.field, p.code) for p in result.problems}


def install(
    session, channel_id: int, since: datetime, until: datetime | None = None, sp: str = "SP-1"
) -> None:
    from meter2cash.cis.parties.models import Premise, ServicePoint

    premise = Premise(code=f"PR-{sp}")
    session.add(premise)
    session.flush()
    point = ServicePoint(code=sp, premise_id=premise.id)
    session.add(point)
    session.flush()
    meter_id = session.get(Channel, channel_id).meter_id
    session.add(
        Installation(meter_id=meter_id, service_point_id=point.id, installed_at=since, removed_at=until)
    )
    session.flush()


def raw_day(session, channel_id: int, day: date) -> np.ndarray:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return (
        MeasurementStore(session).read_window([channel_id], start, start.replace(day=day.day + 1), 900).raw[0]
    )


def test_readings_outside_the_installation_or_before_1970_are_refused_by_line(session):
    ids = make_meter(session, "M1", {"kwh_import_15m": "1", "kwh_import_register": "1"})
    # installed 2026-10-01 05:00 UTC, removed 2026-10-01 20:00 UTC; installed again from 22:00
    install(
        session,
        ids["kwh_import_15m"],
        datetime(2026, 10, 1, 5, tzinfo=UTC),
        datetime(2026, 10, 1, 20, tzinfo=UTC),
    )
    install(session, ids["kwh_import_15m"], datetime(2026, 10, 1, 22, tzinfo=UTC), sp="SP-2")
    r = ingest_bytes(
        session,
        csv(
            "M1,kwh_import_15m,0001-01-01T00:00:00Z,1",  # 2 year 1
            "M1,kwh_import_15m,1969-12-31T23:45:00Z,1",  # 3 before 1970
            "M1,kwh_import_15m,2026-10-01T04:45:00Z,1",  # 4 ends when the meter is installed
            "M1,kwh_import_15m,2026-10-01T05:00:00Z,2",  # 5 first interval installed
            "M1,kwh_import_15m,2026-10-01T19:45:00Z,3",  # 6 last interval before removal
            "M1,kwh_import_15m,2026-10-01T20:00:00Z,1",  # 7 removed
            "M1,kwh_import_15m,2026-10-01T22:00:00Z,4",  # 8 installed again
            "M1,kwh_import_register,2026-10-01T20:00:00Z,500",  # 9 the removal read, at removal
            "M1,kwh_import_register,2026-10-01T04:59:59Z,499",  # 10 a second before installation
            "M1,kwh_import_15m,2026-10-03T13:00:00Z,1",  # 11 more than a day after receipt
        ),
        filename="a.csv",
        received_at=RECEIVED,
    )
    session.commit()
    assert by_line(r) == {
        2: ("start", "ingest.timestamp_out_of_range"),
        3: ("start", "ingest.timestamp_out_of_range"),
        4: ("start", "ingest.outside_installation"),
        7: ("start", "ingest.outside_installation"),
        10: ("start", "ingest.outside_installation"),
        11: ("start", "ingest.future_timestamp"),
    }
    assert "since 2026-10-01T22:00:00Z" in next(p.message for p in r.problems if p.line == 7)
    assert (r.rows_total, r.rows_accepted, r.rows_rejected) == (10, 4, 6)
    day = raw_day(session, ids["kwh_import_15m"], date(2026, 10, 1))
    assert (day[20], day[79], day[88]) == (2, 3, 4)  # 05:00, 19:45, 22:00
    assert int((~np.isnan(day)).sum()) == 3
    assert session.scalars(select(RegisterRead.value)).all() == [500]


def test_a_meter_never_installed_is_held_to_the_date_window_only(session):
    cid = make_meter(session, "M1")["kwh_import_15m"]
    r = ingest_bytes(
        session,
        csv("M1,kwh_import_15m,0001-01-01T00:00:00Z,1", "M1,kwh_import_15m,2026-10-01T00:00:00Z,1"),
        filename="a.csv",
        received_at=RECEIVED,
    )
    assert by_line(r) == {2: ("start", "ingest.timestamp_out_of_range")}
    assert raw_day(session, cid, date(2026, 10, 1))[0] == 1


def test_events_before_1970_are_refused(session):
    make_meter(session, "M1")
    doc = {"events": [{"meter": "M1", "occurred_at": "0001-01-01T00:00:00Z", "code": "101"},
                      {"meter": "M1", "occurred_at": "2026-10-01T00:00:00Z", "code": "101"}]}  # fmt: skip
    r = ingest_bytes(session, json.dumps(doc).encode(), filename="e.json", received_at=RECEIVED)
    assert [(p.field, p.code) for p in r.problems] == [
        ("events[0].occurred_at", "ingest.timestamp_out_of_range")
    ]
    assert len(session.scalars(select(MeterEvent)).all()) == 1


def test_physically_impossible_values_are_refused_with_their_range(session):
    ids = make_meter(session, "M1", {"kwh_import_15m": "1", "kwh_import_30m": "1000", "pf_instant": "1",
                                     "kwh_import_register": "1", "voltage_instant": "1"})  # fmt: skip
    r = ingest_bytes(
        session,
        csv(
            "M1,kwh_import_15m,2026-10-01T00:00:00Z,1e32",  # 2: 1e32 kWh in 15 minutes
            "M1,kwh_import_15m,2026-10-01T00:15:00Z,250000",  # 3: 1 GW for 15 minutes: the bound
            "M1,kwh_import_15m,2026-10-01T00:30:00Z,250000.5",  # 4: just above it
            "M1,kwh_import_15m,2026-10-01T00:45:00Z,-250001",  # 5: below -250,000
            "M1,kwh_import_15m,2026-10-01T01:00:00Z,-0.5",  # 6: negative but possible: VEE's business
            "M1,kwh_import_30m,2026-10-01T00:00:00Z,500.001",  # 7: x1000 = 500,001 > 500,000 kWh/30 min
            "M1,kwh_import_30m,2026-10-01T00:30:00Z,500",  # 8: x1000 = 500,000: the bound
            "M1,kwh_import_30m,2026-10-01T01:00:00Z,1e300",  # 9: x1000 overflows to infinity
            "M1,pf_instant,2026-10-01T00:00:00Z,1.5",  # 10
            "M1,pf_instant,2026-10-01T00:01:00Z,-0.97",  # 11
            "M1,kwh_import_register,2026-10-01T00:00:00Z,-1",  # 12: a register never goes below 0
            "M1,voltage_instant,2026-10-01T00:00:00Z,230.1",  # 13
            "M1,voltage_instant,2026-10-01T00:01:00Z,2000000",  # 14: 2 MV
            "M1,kwh_import_15m,2026-10-01T01:15:00Z,inf",  # 15: never a number
            "M1,kwh_import_15m,2026-10-01T01:30:00Z,NaN",  # 16
        ),
        filename="a.csv",
        received_at=RECEIVED,
    )
    session.commit()
    implausible = {2, 4, 5, 7, 9, 10, 12, 14}
    assert by_line(r) == {
        **{n: ("value", "ingest.implausible_value") for n in implausible},
        15: ("value", "ingest.bad_value"),
        16: ("value", "ingest.bad_value"),
    }
    first = next(p for p in r.problems if p.line == 2)
    assert first.data == {"min": -250_000.0, "max": 250_000.0, "limits_version": "builtin"}
    assert "1e+32 kWh is outside -250000 .. 250000 kWh" in first.message
    assert next(p for p in r.problems if p.line == 10).data["max"] == 1.0
    assert r.limits_version == "builtin"
    day = raw_day(session, ids["kwh_import_15m"], date(2026, 10, 1))
    np.testing.assert_array_equal(day[:5], [np.nan, 250_000, np.nan, np.nan, -0.5])
    assert sorted(session.scalars(select(RegisterRead.value))) == [-0.97, 230.1]


LIMITS = """
version = "north-2"
description = "households only"

[defaults]
max_power_kw = 100

[reading_types.kwh_import_15m]
min = 0
max = 20
"""


def test_a_limits_file_sets_the_bounds_and_is_named_in_each_problem(session):
    ids = make_meter(session, "M1", {"kwh_import_15m": "1", "kwh_import_30m": "1"})
    limits = parse_limits(LIMITS, source="north.toml")
    assert put_limits(session, limits, actor="ops") is True
    assert put_limits(session, parse_limits(LIMITS), actor="ops") is False  # the same again: nothing
    session.commit()
    assert current_limits(session).version == "north-2"
    r = ingest_bytes(
        session,
        csv(
            "M1,kwh_import_15m,2026-10-01T00:00:00Z,20",  # 2 the file's bound
            "M1,kwh_import_15m,2026-10-01T00:15:00Z,20.5",  # 3 above it
            "M1,kwh_import_15m,2026-10-01T00:30:00Z,-0.1",  # 4 the file's min is 0
            "M1,kwh_import_30m,2026-10-01T00:00:00Z,50",  # 5 100 kW x 0.5 h
            "M1,kwh_import_30m,2026-10-01T00:30:00Z,51",  # 6 above the new default
        ),
        filename="a.csv",
        received_at=RECEIVED,
    )
    assert sorted(by_line(r)) == [3, 4, 6]
    assert {p.data["limits_version"] for p in r.problems} == {"north-2"}
    assert r.limits_version == "north-2"
    assert raw_day(session, ids["kwh_import_15m"], date(2026, 10, 1))[0] == 20
    audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "limits.saved")).one()
    assert (audit.actor, audit.entity_id, audit.before["version"]) == ("ops", "north-2", "builtin")

    changed = LIMITS.replace("max = 20", "max = 30")
    with pytest.raises(Conflict) as used:
        put_limits(session, parse_limits(changed))
    assert used.value.code == "limits.version_exists"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('version = "1"\n[reading_types.kwh_import_15m]\nmin = 5\nmax = 1\n', "reading_types.kwh_import_15m"),
        (
            'version = "1"\n[reading_types.kwh_import_15m]\nmin = 0\nmax = inf\n',
            "reading_types.kwh_import_15m",
        ),
        ('version = "1"\n[defaults]\nmax_power_kw = -1\n', "defaults.max_power_kw"),
        ('version = "1"\n[defaults]\nmax_power = 1\n', "defaults.max_power"),
        ("[reading_types.kwh_import_15m]\nmin = 0\nmax = 1\n", "version"),
        ("version = \n", None),
    ],
)
def test_a_bad_limits_file_is_refused_naming_its_field(text, field):
    with pytest.raises(InvalidInput) as bad:
        parse_limits(text, source="x.toml")
    assert bad.value.code == "limits.invalid"
    assert bad.value.data.get("field") == field


def test_limits_for_an_unknown_reading_type_are_refused(session):
    text = 'version = "1"\n[reading_types.kwh_import_5m]\nmin = 0\nmax = 1\n'
    with pytest.raises(InvalidInput) as bad:
        put_limits(session, parse_limits(text))
    assert bad.value.code == "limits.unknown_reading_type"
