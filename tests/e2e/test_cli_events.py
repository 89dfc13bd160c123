"""m2c events list / route, m2c outages, m2c work-orders list / assign / complete through the CLI."""

from __future__ import annotations

import json

from sqlalchemy import select
from typer.testing import CliRunner

from meter2cash.audit.models import AuditEntry
from meter2cash.bootstrap import bootstrap
from meter2cash.cli import app
from meter2cash.config import Settings
from meter2cash.mdm.ingest import ingest_bytes
from meter2cash.workforce.models import WorkOrder

EVENTS = {
    "events": [
        {"meter": "M1", "occurred_at": "2026-11-03T06:00:00Z", "code": "101"},
        {"meter": "M1", "occurred_at": "2026-11-03T06:20:00Z", "code": "102"},
        {"meter": "M1", "occurred_at": "2026-11-03T07:00:00Z", "code": "251"},
        {"meter": "M1", "occurred_at": "2026-11-03T07:05:00Z", "code": "999"},
    ]
}


def test_events_are_listed_routed_and_their_work_order_completed(one_meter_db):
    p = bootstrap(Settings(database_url=one_meter_db))
    with p.sessions() as s, s.begin():  # M1 hangs below no transformer: its outage is its own
        assert ingest_bytes(s, json.dumps(EVENTS).encode(), fmt="json").rows_rejected == 0
    p.dispose()
    runner = CliRunner()

    routed = runner.invoke(app, ["events", "route", "--json"])
    assert routed.exit_code == 0, routed.output
    result = json.loads(routed.output)
    assert result["events"] == 4 and result["cursor_before"] == 0
    assert {k: v for k, v in result["dispositions"].items() if v} == {
        "outage": 1, "restored": 1, "tamper": 1, "unknown": 1,
    }  # fmt: skip
    assert (result["outages_started"], result["outages_restored"], result["disconnects"]) == (1, 1, 1)
    (number,) = result["work_orders"]
    assert number.startswith("WO-") and len(number) == len("WO-2026-000001")

    again = runner.invoke(app, ["events", "route"])
    assert again.exit_code == 0 and "routed 0 events" in again.output

    listed = runner.invoke(app, ["events", "list", "M1", "--from", "2026-11-03T00:00:00Z"])
    assert listed.exit_code == 0, listed.output
    assert (
        "3.26.0.85" in listed.output and "3.12.29.212" in listed.output and "not catalogued" in listed.output
    )
    tamper = runner.invoke(app, ["events", "list", "M1", "--category", "tamper", "--json"])
    assert [e["code"] for e in json.loads(tamper.output)["events"]] == ["251"]
    naive = runner.invoke(app, ["events", "list", "M1", "--from", "2026-11-03T00:00:00"])
    assert naive.exit_code == 2 and "events.naive_timestamp" in naive.output

    outages = runner.invoke(app, ["outages", "--json"])
    (outage,) = json.loads(outages.output)["outages"]
    assert (outage["level"], outage["meter"], outage["meters_affected"], outage["meters_restored"]) == (
        "meter", "M1", 1, 1,
    )  # fmt: skip
    shown = runner.invoke(app, ["outages"])
    assert shown.exit_code == 0 and "2026-11-03 06:20:00" in shown.output
    assert json.loads(runner.invoke(app, ["outages", "--open", "--json"]).output) == {"outages": []}

    assigned = runner.invoke(app, ["work-orders", "assign", number, "crew-7"])
    assert assigned.exit_code == 0 and "assigned" in assigned.output and "crew-7" in assigned.output
    done = runner.invoke(app, ["work-orders", "complete", number, "tamper_confirmed", "--actor", "wfm"])
    assert done.exit_code == 0 and "completed" in done.output
    wrong = runner.invoke(app, ["work-orders", "assign", number, "crew-8"])
    assert wrong.exit_code == 2 and "work_order.bad_transition" in wrong.output
    missing = runner.invoke(app, ["work-orders", "complete", "WO-2026-999999", "x"])
    assert missing.exit_code == 2 and "work_order.not_found" in missing.output
    listed_orders = json.loads(
        runner.invoke(app, ["work-orders", "list", "--status", "completed", "--json"]).output
    )
    assert [(w["number"], w["outcome"], w["meter"]) for w in listed_orders["work_orders"]] == [
        (number, "tamper_confirmed", "M1")
    ]

    p = bootstrap(Settings(database_url=one_meter_db))
    with p.sessions() as s:
        audit = s.scalars(
            select(AuditEntry).where(AuditEntry.entity == "work_order").order_by(AuditEntry.id)
        ).all()
        assert [(a.action, a.actor) for a in audit] == [
            ("work_order.create", "event-routing"), ("work_order.assign", "cli"),
            ("work_order.complete", "wfm"),
        ]  # fmt: skip
        assert audit[-1].before["status"] == "assigned" and audit[-1].after["status"] == "completed"
        assert s.scalars(select(WorkOrder.status)).one() == "completed"
    p.dispose()
