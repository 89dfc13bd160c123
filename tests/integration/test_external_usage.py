"""Determinants an external MDM delivers: stored with every version, read through ExternalUsage."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from meter2cash.cis.parties.models import Premise, ServicePoint
from meter2cash.integration.determinants import deliver
from meter2cash.mdm.tou import TouCalendar
from meter2cash.mdm.usage.external import ExternalUsage
from meter2cash.mdm.usage.format import FORMAT, parse_determinants
from meter2cash.mdm.usage.models import ExternalDeterminants
from meter2cash.mdm.usage.port import UsageQuery

TZ = "Asia/Kolkata"
#: October 2026 in Asia/Kolkata, as UTC.
START, END = datetime(2026, 9, 30, 18, 30, tzinfo=UTC), datetime(2026, 10, 31, 18, 30, tzinfo=UTC)
TOU = TouCalendar.model_validate(
    {
        "default_period": "normal",
        "periods": [
            {"name": "peak", "start": "18:00", "end": "22:00"},
            {"name": "night", "start": "22:00", "end": "06:00"},
        ],
    }
)


def record(
    sp: str = "SP-1", first: str = "2026-10-01", last: str = "2026-10-03", **changes: Any
) -> dict[str, Any]:
    days = (date.fromisoformat(last) - date.fromisoformat(first)).days + 1
    base: dict[str, Any] = {
        "service_point": sp,
        "from": first,
        "to": last,
        "version": "v1",
        "interval_s": 900,
        "demand_interval_s": 900,
        "tou_periods": ["peak", "normal", "night"],
        "kwh_total": "60.006",
        "kwh_by_period": {"peak": "10.001", "normal": "30.002", "night": "20.003"},
        "max_demand_kw": "5.5",
        "max_demand_kw_by_period": {"peak": "5.5", "normal": "4.25", "night": "2"},
        "estimated_share": "0.25",
        "missing_share": "0",
        "valid_intervals": days * 96,
        "daily_kwh": {"first": first, "kwh": [f"{i + 1}.5" for i in range(days)]},
    }
    base.update(changes)
    return base


def delivered(session, *records: Any, source: str = "Other MDM", tz: str = TZ):
    doc = {"format": FORMAT, "source": source, "timezone": tz, "determinants": list(records)}
    result = deliver(session, parse_determinants(json.dumps(doc)), received_by="test")
    session.commit()
    return result


def service_points(session, *codes: str) -> dict[str, int]:
    out = {}
    for c in codes:
        premise = Premise(code=f"PR-{c}")
        session.add(premise)
        session.flush()
        sp = ServicePoint(code=c, premise_id=premise.id)
        session.add(sp)
        session.flush()
        out[c] = sp.id
    session.commit()
    return out


def query(rows: list[tuple[str, str, str]], *, tou: TouCalendar | None = TOU, **kw: Any) -> UsageQuery:
    return UsageQuery(
        service_point_ids=[0] * len(rows),
        service_point_codes=[r[0] for r in rows],
        first=[date.fromisoformat(r[1]) for r in rows],
        last=[date.fromisoformat(r[2]) for r in rows],
        start=START,
        end=END,
        tz=kw.pop("tz", TZ),
        tou=tou,
        period_names=tou.period_names if tou else ["all"],
        **kw,
    )


def test_deliveries_keep_every_version_and_refuse_what_they_cannot_hold(session):
    service_points(session, "SP-1", "SP-2")
    first = delivered(session, record(), record("SP-2"), record("SP-X"), record(kwh_total=1.5))
    assert first.to_dict()["outcomes"] == {"new": 2}
    assert [(p.line, p.code, p.field) for p in first.problems] == [
        (2, "usage.unknown_service_point", "determinants[2].service_point"),
        (3, "usage.bad_number", "determinants[3].kwh_total"),
    ]
    again = delivered(
        session,
        record(),  # the same version again
        record(
            "SP-2",
            version="v2",
            kwh_total="61.006",
            kwh_by_period={"peak": "11.001", "normal": "30.002", "night": "20.003"},
        ),
        record(version="v1", kwh_total="0", kwh_by_period={"peak": "0", "normal": "0", "night": "0"}),
        record(first="2026-10-04", last="2026-10-04"),  # other days of SP-1: a record of their own
    )
    assert [a["outcome"] for a in again.accepted] == ["unchanged", "replaced", "new"]
    assert [(p.line, p.code) for p in again.problems] == [(2, "usage.version_conflict")]
    back = delivered(session, record("SP-2"))  # v1 of SP-2 delivered again: current once more
    assert [a["outcome"] for a in back.accepted] == ["restored"]
    rows = session.scalars(select(ExternalDeterminants).order_by(ExternalDeterminants.id)).all()
    assert [(r.service_point_code, r.version, r.current) for r in rows] == [
        ("SP-1", "v1", True),
        ("SP-2", "v1", True),
        ("SP-2", "v2", False),
        ("SP-1", "v1", True),
    ]
    assert rows[3].first_day == rows[3].last_day == date(2026, 10, 4)
    assert rows[0].payload["kwh_total"] == "60.006" and rows[0].received_by == "test"


def test_usage_of_delivered_days_is_exact_and_named_by_period(session):
    service_points(session, "SP-1", "SP-2", "SP-3")
    delivered(
        session,
        record(),
        record("SP-2", "2026-10-01", "2026-10-31", kvah_total="70.5", kwh_export="3.25"),
        record(
            "SP-3",
            tou_periods=["total"],
            kwh_by_period={"total": "60.006"},
            max_demand_kw_by_period={"total": "5.5"},
        ),
    )
    q = query(
        [
            ("SP-1", "2026-10-01", "2026-10-03"),
            ("SP-2", "2026-10-01", "2026-10-31"),
            ("SP-3", "2026-10-01", "2026-10-03"),
        ]
    )
    (batch,) = list(ExternalUsage(session).usage(q))
    assert batch.rows.tolist() == [0, 1] and batch.interval_s == 900
    # the query's periods are normal, peak, night: the record's are taken by name
    assert TOU.period_names == ["normal", "peak", "night"]
    assert batch.det.kwh_by_period.tolist() == [[30.002, 10.001, 20.003]] * 2
    assert batch.det.max_demand_kw_by_period.tolist() == [[4.25, 5.5, 2.0]] * 2
    assert batch.det.kwh_total.tolist() == [60.006, 60.006] and batch.det.estimated_share.tolist() == [
        0.25,
        0.25,
    ]
    assert batch.valid.tolist() == [288, 31 * 96]
    # kVAh where a record has none is its kWh (power factor 1), export 0
    assert batch.kvah_total is not None and batch.kvah_total.tolist() == [60.006, 70.5]
    assert batch.kwh_export is not None and batch.kwh_export.tolist() == [0.0, 3.25]
    assert batch.days[0] == "2026-10-01" and batch.days[-1] == "2026-10-31" and len(batch.days) == 31
    assert batch.daily_kwh[0, :4].tolist() == [1.5, 2.5, 3.5, 0.0] and batch.daily_kwh[1, 30] == 31.5
    assert batch.versions[0] == {
        "source": "Other MDM",
        "version": "v1",
        "service_point": "SP-1",
        "from": "2026-10-01",
        "to": "2026-10-03",
    }
    assert batch.channel_ids == [None, None]
    (problem,) = batch.problems
    assert (problem.row, problem.code) == (2, "usage.tou_mismatch")
    assert "['total']" in problem.message and "SP-3" in problem.message
    # without a TOU calendar any record is one period: its total and its maximum demand
    (flat,) = list(
        ExternalUsage(session).usage(
            query([("SP-3", "2026-10-01", "2026-10-03"), ("SP-1", "2026-10-01", "2026-10-03")], tou=None)
        )
    )
    assert flat.det.kwh_by_period.tolist() == [
        [60.006],
        [60.006],
    ] and flat.det.max_demand_kw_by_period.tolist() == [[5.5], [5.5]]
    assert flat.kvah_total is None and flat.kwh_export is None


def test_rows_the_records_do_not_fit_are_named(session):
    service_points(session, "SP-1", "SP-2", "SP-3")
    delivered(
        session,
        record(),
        record("SP-2", demand_interval_s=1800),
        record("SP-3", interval_s=1800, demand_interval_s=1800),
    )
    q = query(
        [
            ("SP-1", "2026-10-01", "2026-10-02"),  # part of the delivered days
            ("SP-1", "2026-10-01", "2026-10-03"),
            ("SP-9", "2026-10-01", "2026-10-03"),
            ("SP-2", "2026-10-01", "2026-10-03"),  # demand over 1800 s; billing asks for 900 s
        ],
        demand_interval_s=900,
    )
    (batch,) = list(ExternalUsage(session).usage(q))
    assert batch.rows.tolist() == [1]
    codes = {p.row: (p.code, p.message) for p in batch.problems}
    assert codes[0][0] == "usage.not_delivered" and "SP-1 for 2026-10-01..2026-10-02" in codes[0][1]
    assert "delivered: 2026-10-01..2026-10-03" in codes[0][1]
    assert codes[2][0] == "usage.not_delivered"
    assert codes[3][0] == "usage.interval_mismatch" and "1800 s" in codes[3][1]
    # asked for 1800 s it fits; 30-minute data has no demand over 15 minutes: 1800 s fits 900 s
    for sp, asked in (("SP-2", 1800), ("SP-3", 900), ("SP-3", None)):
        (ok,) = list(
            ExternalUsage(session).usage(query([(sp, "2026-10-01", "2026-10-03")], demand_interval_s=asked))
        )
        assert ok.rows.tolist() == [0] and not ok.problems
    (plain,) = list(ExternalUsage(session).usage(query([("SP-2", "2026-10-01", "2026-10-03")])))
    assert plain.problems[0].code == "usage.interval_mismatch"
    # local days of another zone are other hours
    (other,) = list(
        ExternalUsage(session).usage(query([("SP-1", "2026-10-01", "2026-10-03")], tz="Europe/Berlin"))
    )
    assert len(other) == 0 and other.problems[0].code == "usage.timezone_mismatch"


def test_rows_come_in_batches_of_the_query_and_of_one_interval_length(session):
    service_points(session, "SP-1", "SP-2", "SP-3")
    delivered(session, record(), record("SP-2", interval_s=1800, demand_interval_s=1800), record("SP-3"))
    q = query([(c, "2026-10-01", "2026-10-03") for c in ("SP-1", "SP-2", "SP-3", "SP-4")], chunk_rows=2)
    batches = list(ExternalUsage(session).usage(q))
    assert [(b.rows.tolist(), b.interval_s) for b in batches] == [([0], 900), ([1], 1800), ([2], 900)]
    assert [[p.row for p in b.problems] for b in batches] == [[], [], [3]]
    assert np.all(batches[1].det.kwh_total == 60.006)


def test_changed_follows_the_current_version(session):
    service_points(session, "SP-1", "SP-2")
    delivered(session, record(), record("SP-2"))
    (batch,) = list(
        ExternalUsage(session).usage(
            query([("SP-1", "2026-10-01", "2026-10-03"), ("SP-2", "2026-10-01", "2026-10-03")])
        )
    )
    local = {"channels": [1], "days": 3, "sum": 3}
    usage = ExternalUsage(session)
    assert usage.changed(START, END, [*batch.versions, local]) == [False, False, False]
    delivered(session, record(version="v2"))
    assert usage.changed(START, END, [*batch.versions, local]) == [True, False, False]
    gone = {**batch.versions[1], "from": "2026-10-02"}
    assert usage.changed(START, END, [gone]) == [True]
