"""Meter events routed by rule: outages coalesced per transformer to the OMS, tampers to a flag,
a work order and a disconnect, load violations to the CIS and the consumer, a storm of 20,000
events routed without losing one."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select

from meter2cash.cis.parties.models import Account, Person, Premise, ServiceAgreement, ServicePoint
from meter2cash.events.models import OutboxMessage
from meter2cash.integration.event_routing import DISPOSITIONS, route_events
from meter2cash.integration.load_violations import detect_load_violations
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.events.models import (
    EventAction,
    EventEpisode,
    EventRoutingState,
    LoadViolation,
    Outage,
    TamperFlag,
)
from meter2cash.mdm.events.queries import outage_windows
from meter2cash.mdm.ingest import ingest_bytes
from meter2cash.mdm.models import Channel, DistributionTransformer, Feeder, Installation, Meter, MeterEvent
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.notify.models import Notification
from meter2cash.workforce.models import WorkOrder

T0 = datetime(2026, 11, 3, 6, 0, tzinfo=UTC)
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def build_network(session, meters_per_dt: list[int], *, phone: str = "") -> list[list[str]]:
    """Feeder F1 with transformers DT1..DTn, each with its meters installed at service points
    (each with an account and an agreement sanctioned at 5 kW); the serials per transformer."""
    rts = ensure_catalogue(session)
    feeder = Feeder(code="F1")
    session.add(feeder)
    session.flush()
    dts = [DistributionTransformer(code=f"DT{k + 1}", feeder_id=feeder.id) for k in range(len(meters_per_dt))]
    session.add_all(dts)
    session.flush()
    serials = [[f"M{k + 1}-{j:05d}" for j in range(n)] for k, n in enumerate(meters_per_dt)]
    flat = [(dt.id, s) for dt, group in zip(dts, serials, strict=True) for s in group]
    n = len(flat)
    session.execute(insert(Meter), [{"serial": s, "status": "installed"} for _, s in flat])
    meter_id = dict(session.execute(select(Meter.serial, Meter.id)).all())
    session.execute(insert(Person), [{"name": f"P {s}", "phone": phone} for _, s in flat])
    person_ids = session.scalars(select(Person.id).order_by(Person.id)).all()[-n:]
    session.execute(insert(Premise), [{"code": f"PR-{s}"} for _, s in flat])
    premise = dict(session.execute(select(Premise.code, Premise.id)).all())
    session.execute(
        insert(ServicePoint),
        [{"code": f"SP-{s}", "premise_id": premise[f"PR-{s}"], "dt_id": d} for d, s in flat],
    )
    sp = dict(session.execute(select(ServicePoint.code, ServicePoint.id)).all())
    session.execute(
        insert(Account),
        [{"number": f"A-{s}", "person_id": p} for (_, s), p in zip(flat, person_ids, strict=True)],
    )
    acc = dict(session.execute(select(Account.number, Account.id)).all())
    session.execute(
        insert(Installation),
        [{"meter_id": meter_id[s], "service_point_id": sp[f"SP-{s}"], "installed_at": T0 - timedelta(days=60)}
         for _, s in flat],
    )  # fmt: skip
    session.execute(
        insert(ServiceAgreement),
        [{"number": f"SA-{s}", "account_id": acc[f"A-{s}"], "service_point_id": sp[f"SP-{s}"],
          "tariff_code": "T", "start_date": date(2026, 9, 1), "sanctioned_load_kw": Decimal(5)}
         for _, s in flat],
    )  # fmt: skip
    session.execute(
        insert(Channel),
        [{"meter_id": meter_id[s], "reading_type_id": rts["kwh_import_15m"].id, "multiplier": Decimal(1)}
         for _, s in flat],
    )  # fmt: skip
    session.flush()
    return serials


def ingest_events(session, events: list[tuple[str, datetime, int]]) -> None:
    doc = {
        "source": "hes-test",
        "events": [{"meter": m, "occurred_at": t.isoformat(), "code": str(c)} for m, t, c in events],
    }
    result = ingest_bytes(session, json.dumps(doc).encode(), filename="events.json", fmt="json")
    assert result.rows_rejected == 0, result.problems


def topics(session, topic: str) -> list[dict]:
    return [
        m.payload
        for m in session.scalars(
            select(OutboxMessage).where(OutboxMessage.topic == topic).order_by(OutboxMessage.id)
        )
    ]


def count(session, table) -> int:
    return session.scalar(select(func.count()).select_from(table))


@SQLITE
def test_power_failures_under_one_transformer_are_one_outage_restored_when_every_meter_is(session):
    (dt1, dt2) = build_network(session, [3, 1])
    ingest_events(
        session,
        [(dt1[0], T0, 101), (dt1[1], T0 + timedelta(seconds=40), 101),
         (dt1[2], T0 + timedelta(seconds=90), 101), (dt2[0], T0 + timedelta(seconds=10), 101)],
    )  # fmt: skip
    first = route_events(session, now=T0 + timedelta(minutes=5))
    assert first.events == 4
    assert first.dispositions["outage"] == 4
    assert first.outages_started == 2
    started = topics(session, "oms.outage.started")
    assert sorted((m["dt"], m["meters_affected"]) for m in started) == [("DT1", 3), ("DT2", 1)]
    assert all(m["feeder"] is None and m["level"] == "dt" for m in started)

    # two of DT1's three meters restored: still out; the third: restored at its time
    ingest_events(
        session, [(dt1[0], T0 + timedelta(minutes=30), 102), (dt1[1], T0 + timedelta(minutes=31), 102)]
    )
    route_events(session, now=T0 + timedelta(minutes=35))
    out = session.scalar(select(Outage).where(Outage.dt_id.is_not(None)).order_by(Outage.id))
    assert (out.meters_affected, out.meters_restored, out.restored_at) == (3, 2, None)
    assert topics(session, "oms.outage.restored") == []
    ingest_events(session, [(dt1[2], T0 + timedelta(minutes=42), 102)])
    last = route_events(session, now=T0 + timedelta(minutes=45))
    assert last.dispositions["restored"] == 1 and last.outages_restored == 1
    session.refresh(out)
    assert out.restored_at == T0 + timedelta(minutes=42)
    assert [m["meters_restored"] for m in topics(session, "oms.outage.restored")] == [3]
    assert out.notified_oms_at == T0 + timedelta(minutes=5)

    # outage-aware VEE: the meter's window is 06:00..06:30, the 15-minute slots 24 and 25 of the day
    mid = session.scalar(select(Meter.id).where(Meter.serial == dt1[0]))
    day = datetime(2026, 11, 3, tzinfo=UTC)
    windows = outage_windows(session, [mid], day, day + timedelta(days=1))
    assert windows.starts[mid].tolist() == [int(T0.timestamp())]
    assert windows.ends[mid].tolist() == [int((T0 + timedelta(minutes=30)).timestamp())]
    assert windows.mask(mid, int(day.timestamp()), 96, 900).nonzero()[0].tolist() == [24, 25]


@SQLITE
def test_a_cover_opened_is_a_tamper_flag_a_work_order_and_one_disconnect(session):
    (dt1,) = build_network(session, [2])
    ingest_events(
        session, [(dt1[0], T0, 251), (dt1[0], T0 + timedelta(minutes=2), 251)]
    )  # pushed, then logged
    result = route_events(session, now=T0 + timedelta(minutes=3))
    assert result.dispositions["tamper"] == 1 and result.dispositions["duplicate"] == 1
    flag = session.scalars(select(TamperFlag)).one()
    sp = session.scalar(select(ServicePoint.id).where(ServicePoint.code == f"SP-{dt1[0]}"))
    assert (flag.kind, flag.from_at, flag.to_at, flag.service_point_id, flag.valid) == (
        "event.cover_open", T0, None, sp, True,
    )  # fmt: skip
    wo = session.scalars(select(WorkOrder)).one()
    assert (wo.kind, wo.status, wo.priority, wo.number) == (
        "tamper_inspection",
        "open",
        "high",
        "WO-2026-000001",
    )
    created = topics(session, "workforce.work_order.created")
    assert [(m["number"], m["meter"], m["event"]) for m in created] == [
        ("WO-2026-000001", dt1[0], "event.cover_open")
    ]
    assert [m["kind"] for m in topics(session, "cis.tamper")] == ["event.cover_open"]
    commands = session.scalars(select(MeterCommand).where(MeterCommand.kind == "disconnect")).all()
    assert [(c.reason, c.requested_by, c.idempotency_key) for c in commands] == [
        ("tamper.valid", "event-routing", f"tamper-{flag.episode_id}")
    ]
    assert {(a.target, a.action) for a in session.scalars(select(EventAction))} == {
        ("cis", "tamper_flag"), ("wfm", "work_order"), ("hes", "disconnect"),
    }  # fmt: skip


@SQLITE
def test_a_magnet_becomes_a_valid_tamper_once_it_persisted_and_is_disconnected_once(session):
    (dt1,) = build_network(session, [1])
    ingest_events(session, [(dt1[0], T0, 201)])
    early = route_events(session, now=T0 + timedelta(minutes=10))  # the rules ask for 30 minutes
    assert early.disconnects == 0 and early.tamper_flags == 1 and len(early.work_orders) == 1
    assert count(session, MeterCommand) == 0
    later = route_events(session, now=T0 + timedelta(minutes=31))  # no new events: the open magnet is checked
    assert later.events == 0 and later.disconnects == 1
    again = route_events(session, now=T0 + timedelta(minutes=60))
    assert again.disconnects == 0
    assert session.scalar(select(func.count()).where(MeterCommand.kind == "disconnect")) == 1
    episode = session.scalars(select(EventEpisode)).one()
    assert episode.valid_at == T0 + timedelta(minutes=30)
    # the magnet removed: the flag ends, the work order stays
    ingest_events(session, [(dt1[0], T0 + timedelta(minutes=70), 202)])
    route_events(session, now=T0 + timedelta(minutes=75))
    assert session.scalars(select(TamperFlag.to_at)).one() == T0 + timedelta(minutes=70)
    assert count(session, WorkOrder) == 1


@SQLITE
def test_a_magnet_removed_before_it_counts_is_never_a_disconnect(session):
    (dt1,) = build_network(session, [1])
    ingest_events(session, [(dt1[0], T0, 201), (dt1[0], T0 + timedelta(minutes=20), 202)])
    result = route_events(session, now=T0 + timedelta(hours=2))
    assert result.disconnects == 0 and result.episodes_closed == 1
    assert session.scalars(select(EventEpisode)).one().duration_s == 20 * 60
    route_events(session, now=T0 + timedelta(hours=3))
    assert count(session, MeterCommand) == 0


@SQLITE
def test_load_violation_from_intervals_is_recorded_once_with_a_cis_message_and_an_sms(session):
    (dt1,) = build_network(session, [2], phone="+919800000001")
    day = date(2026, 11, 3)
    values = [0.5] * 96
    values[40] = 2.0  # 2 kWh in 15 minutes = 8 kW, above 5 kW; 0.5 kWh = 2 kW is not
    doc = {"readings": [
        {"meter": dt1[0], "channel": "kwh_import_15m", "start": "2026-11-03T00:00:00Z", "interval_s": 900,
         "values": values},
        {"meter": dt1[1], "channel": "kwh_import_15m", "start": "2026-11-03T00:00:00Z", "interval_s": 900,
         "values": [1.25] * 96},  # 5 kW exactly: not above
    ]}  # fmt: skip
    assert ingest_bytes(session, json.dumps(doc).encode(), fmt="json").rows_rejected == 0
    result = detect_load_violations(session, day, now=T0)
    assert (result.channel_days, result.found, result.recorded, result.sms) == (2, 1, 1, 1)
    row = session.scalars(select(LoadViolation)).one()
    assert (row.demand_kw, row.sanctioned_kw, row.source) == (Decimal("8.000"), Decimal("5.000"), "intervals")
    assert row.at == datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    sms = session.scalars(select(Notification)).one()
    assert (sms.template, sms.recipient, sms.status) == ("load_violation", "+919800000001", "pending")
    assert sms.context["demand"] == "8 kW" and sms.context["sanctioned"] == "5 kW"
    assert [(m["meter"], m["demand_kw"]) for m in topics(session, "cis.load_violation")] == [
        (dt1[0], "8.000")
    ]
    again = detect_load_violations(session, day, now=T0)
    assert (again.recorded, again.already_known) == (0, 1)
    assert count(session, Notification) == 1


@SQLITE
def test_unknown_duplicate_and_orphan_events_are_counted_and_the_cursor_moves_on(session):
    (dt1,) = build_network(session, [1])
    ingest_events(
        session,
        [(dt1[0], T0, 999), (dt1[0], T0 + timedelta(seconds=1), 102), (dt1[0], T0 + timedelta(seconds=2), 7),
         (dt1[0], T0 + timedelta(seconds=3), 7), (dt1[0], T0 + timedelta(seconds=4), 52)],
    )  # fmt: skip
    result = route_events(session, now=T0 + timedelta(minutes=1))
    # 999 is not catalogued; 102 and 52 restore nothing open; the second over-voltage repeats the first
    assert {k: v for k, v in result.dispositions.items() if v} == {
        "unknown": 1, "orphan": 2, "routed": 1, "duplicate": 1,
    }  # fmt: skip
    assert sum(result.dispositions.values()) == 5
    assert [m["event_id"] for m in topics(session, "oms.meter_event")] == [7]
    state = session.get(EventRoutingState, "meter_event")
    assert state.last_event_id == session.scalar(select(func.max(MeterEvent.id)))
    assert route_events(session, now=T0 + timedelta(minutes=2)).events == 0


@pytest.mark.slow
def test_a_storm_of_20000_events_under_5_transformers_is_5_outages_and_nothing_is_lost(session):
    groups = build_network(session, [2000] * 5)
    events = []
    for k, group in enumerate(groups):
        for j, serial in enumerate(group):
            events.append((serial, T0 + timedelta(seconds=k * 7 + j % 120), 101))
            events.append((serial, T0 + timedelta(hours=1, seconds=j % 600), 102))
    ingest_events(session, events)
    session.commit()
    result = route_events(session, now=T0 + timedelta(hours=2))
    session.commit()
    assert result.events == 20_000
    assert sum(result.dispositions.values()) == 20_000
    assert (result.dispositions["outage"], result.dispositions["restored"]) == (10_000, 10_000)
    assert (result.outages_started, result.outages_restored) == (5, 5)
    outages = session.scalars(select(Outage).order_by(Outage.id)).all()
    assert [(o.meters_affected, o.meters_restored) for o in outages] == [(2000, 2000)] * 5
    assert [m["meters_affected"] for m in topics(session, "oms.outage.started")] == [2000] * 5
    assert count(session, EventEpisode) == 10_000
    assert session.get(EventRoutingState, "meter_event").last_event_id == session.scalar(
        select(func.max(MeterEvent.id))
    )
    assert set(result.dispositions) == set(DISPOSITIONS)


@SQLITE
def test_the_api_routes_lists_and_takes_the_wfm_s_completion(platform):
    import warnings

    from meter2cash.api import create_app
    from meter2cash.audit.models import AuditEntry

    with warnings.catch_warnings():  # the test client warns about its httpx transport on import
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    with platform.sessions() as s, s.begin():
        (dt1,) = build_network(s, [1])
        ingest_events(s, [(dt1[0], T0, 101), (dt1[0], T0 + timedelta(minutes=5), 251)])
    with TestClient(create_app(platform)) as api:
        routed = api.post("/api/v1/events/route", json={})
        assert routed.status_code == 200, routed.text
        assert routed.json()["dispositions"]["outage"] == 1 and routed.json()["dispositions"]["tamper"] == 1
        (number,) = routed.json()["work_orders"]
        events = api.get(f"/api/v1/meters/{dt1[0]}/events", params={"category": "power"}).json()["events"]
        assert [(e["code"], e["cim_type"], e["priority"], e["episode_closed_at"]) for e in events] == [
            ("101", "3.26.0.85", "high", None)
        ]
        assert (
            api.get(f"/api/v1/meters/{dt1[0]}/events", params={"from": "2026-11-03T06:00:00"}).json()[
                "error"
            ]["code"]
            == "events.naive_timestamp"
        )
        assert api.get("/api/v1/meters/NOPE/events").status_code == 404
        (outage,) = api.get("/api/v1/outages", params={"open": "true"}).json()
        assert (outage["dt"], outage["meters_affected"], outage["restored_at"]) == ("DT1", 1, None)
        listed = api.get("/api/v1/work-orders", params={"status": "open"}).json()
        assert [(w["number"], w["kind"], w["meter"]) for w in listed["items"]] == [
            (number, "tamper_inspection", dt1[0])
        ]
        done = api.post(f"/api/v1/work-orders/{number}/complete", json={"outcome": "tamper_confirmed"})
        assert done.status_code == 409 and done.json()["error"]["code"] == "work_order.bad_transition"
        assert (
            api.post(f"/api/v1/work-orders/{number}/assign", json={"assignee": "crew-2"}).status_code == 200
        )
        done = api.post(f"/api/v1/work-orders/{number}/complete", json={"outcome": "tamper_confirmed"})
        assert done.status_code == 200 and done.json()["status"] == "completed"
        repeat = api.post(f"/api/v1/work-orders/{number}/complete", json={"outcome": "tamper_confirmed"})
        assert repeat.status_code == 200
        missing = api.post("/api/v1/work-orders/WO-2026-999999/assign", json={"assignee": "x"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "work_order.not_found"
    with platform.sessions() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == number)).all()
        assert actions == ["work_order.create", "work_order.assign", "work_order.complete"]
        updates = topics(s, "workforce.work_order.updated")
        assert [(m["event"], m["status"]) for m in updates] == [
            ("assign", "assigned"),
            ("complete", "completed"),
        ]


@SQLITE
def test_a_new_maximum_demand_above_the_sanctioned_load_is_a_violation_a_repeated_one_is_not(session):
    (dt1,) = build_network(session, [1], phone="+919800000002")
    mid = session.scalar(select(Meter.id).where(Meter.serial == dt1[0]))
    md = ensure_catalogue(session)["kw_md_register"]
    session.add(Channel(meter_id=mid, reading_type_id=md.id, multiplier=Decimal(1)))
    session.flush()
    doc = {"registers": [
        {"meter": dt1[0], "channel": "kw_md_register", "read_at": "2026-11-02T00:00:00Z", "value": 4.2},
        {"meter": dt1[0], "channel": "kw_md_register", "read_at": "2026-11-03T00:00:00Z", "value": 6.25},
        {"meter": dt1[0], "channel": "kw_md_register", "read_at": "2026-11-04T00:00:00Z", "value": 6.25},
    ]}  # fmt: skip
    assert ingest_bytes(session, json.dumps(doc).encode(), fmt="json").rows_rejected == 0
    found = [detect_load_violations(session, date(2026, 11, d), now=T0).recorded for d in (2, 3, 4)]
    assert found == [0, 1, 0]  # 4.2 kW is within 5 kW; 6.25 kW is not; the same maximum read again is not new
    row = session.scalars(select(LoadViolation)).one()
    assert (row.source, row.demand_kw, row.at) == (
        "md_register",
        Decimal("6.250"),
        datetime(2026, 11, 3, tzinfo=UTC),
    )
    assert session.scalars(select(Notification.recipient)).all() == ["+919800000002"]


@SQLITE
def test_routing_waits_at_a_gap_in_the_event_ids_until_it_is_filled_or_old(session):
    (dt1,) = build_network(session, [1])
    mid = session.scalar(select(Meter.id).where(Meter.serial == dt1[0]))

    def event(eid: int, minute: int, code: str) -> None:  # an ingest committing with the id it was given
        session.add(MeterEvent(id=eid, meter_id=mid, occurred_at=T0 + timedelta(minutes=minute), code=code))
        session.flush()

    event(1, 0, "7")  # over voltage, restored, again, restored
    event(2, 1, "8")
    event(5, 4, "8")  # 3 and 4 are still being written
    assert route_events(session, now=T0).cursor == 2
    assert route_events(session, now=T0 + timedelta(minutes=2)).cursor == 2  # still within the grace
    event(3, 2, "7")  # 3 commits late: routed; 4 never does
    late = route_events(session, now=T0 + timedelta(minutes=3))
    assert (late.events, late.cursor) == (1, 3)
    assert route_events(session, now=T0 + timedelta(minutes=4, seconds=59)).cursor == 3
    old = route_events(session, now=T0 + timedelta(minutes=5))  # the gap at 4 is 5 minutes old
    assert (old.events, old.cursor) == (1, 5)
    state = session.get(EventRoutingState, "meter_event")
    assert (state.gap_horizon, state.gap_seen_at) == (None, None)
    routed = sorted(e["meter_event_id"] for e in topics(session, "oms.meter_event"))
    assert routed == [1, 2, 3, 5]
