"""Rule sets by customer class, versions through the service, and the exceptions work queue."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from conftest import attach_customer
from meter2cash.audit.models import AuditEntry
from meter2cash.cis.parties.customer_classes import service_point_classes
from meter2cash.core.errors import Conflict, InvalidInput
from meter2cash.core.quality import Quality
from meter2cash.mdm.models import Channel, Meter, VeeFinding, VeeRun
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.vee import work_queue as queue
from meter2cash.mdm.vee.models import VeeException, VeeRereadRequest
from meter2cash.mdm.vee.ruleset.store import get_rule_set, packaged_rule_sets, put_rule_set, rule_set_versions
from meter2cash.mdm.vee.service import run_vee

DAY = date(2026, 3, 10)
START = datetime(2026, 3, 10, tzinfo=UTC)


def _customer(session, serial: str, customer_class: str | None) -> int:
    rts = ensure_catalogue(session)
    meter = Meter(serial=serial)
    session.add(meter)
    session.flush()
    ch = Channel(meter_id=meter.id, reading_type_id=rts["kwh_import_15m"].id)
    session.add(ch)
    session.flush()
    if customer_class:
        attach_customer(session, meter.id, serial, customer_class)
    return ch.id


def _spiky_day(session, cid: int) -> None:
    v = 0.3 + 0.05 * np.sin(np.arange(96) / 5)
    v[50] = 40.0  # 160 kW for a quarter-hour
    MeasurementStore(session).merge({(cid, DAY): (np.arange(96), v)}, {cid: 900})


def test_packaged_rule_sets_are_valid_and_chosen_by_customer_class(session):
    assert {"default", "residential", "commercial"} <= set(packaged_rule_sets())
    home = _customer(session, "H-1", "residential")
    shop = _customer(session, "C-1", "commercial")
    other = _customer(session, "X-1", None)
    for cid in (home, shop, other):
        _spiky_day(session, cid)
    session.commit()
    res = run_vee(session, start=START, end=START + timedelta(days=1), customer_classes=service_point_classes)
    session.commit()
    run = session.get(VeeRun, res.run_id)
    assert run.rule_set == "commercial+default+residential" and run.rule_set_version == "1+1+1"
    spikes = session.execute(
        select(VeeFinding.channel_id, VeeFinding.action, VeeFinding.rule_set).where(
            VeeFinding.rule == "vee.interval_spike"
        )
    ).all()
    assert sorted(spikes) == sorted(
        [
            (home, "reject", "residential@1"),
            (shop, "exception", "commercial@1"),
            (other, "reject", "default@1"),
        ]
    )
    # the commercial spike waits for a person; the households' spikes were estimated away
    items, total = queue.list_exceptions(session, open_only=True)
    assert total == 1 and items[0]["meter"] == "C-1" and items[0]["priority"] == 2
    assert items[0]["rule"] == "vee.interval_spike" and items[0]["first_slot"] == 50


def test_rule_set_versions_are_stored_audited_and_refused_when_reused(session):
    base = get_rule_set(session, "residential").to_mapping()
    changed = {
        **base,
        "version": "2",
        "rules": {**base["rules"], "zero_run": {"action": "flag", "min_hours": 6.0}},
    }
    rs = put_rule_set(session, "residential", changed, actor="ops")
    assert rs.version == "2" and get_rule_set(session, "residential").rules.zero_run.action == "flag"
    assert put_rule_set(session, "residential", changed, actor="ops") == rs  # same again: no change
    with pytest.raises(Conflict) as exc:
        put_rule_set(session, "residential", {**changed, "description": "other"}, actor="ops")
    assert exc.value.code == "vee.rule_set_version_exists"
    with pytest.raises(InvalidInput) as bad:
        put_rule_set(
            session, "residential", {**changed, "version": "3", "rules": {"zero_run": {"min_hours": -1}}}
        )
    assert bad.value.code == "vee.rule_set_invalid"
    assert [v["version"] for v in rule_set_versions(session, "residential")] == ["1", "2"]
    audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "vee.rule_set_saved")).one()
    assert audit.actor == "ops" and audit.after["version"] == "2" and audit.before["version"] == "1"


def _exception(session) -> tuple[int, int]:
    cid = _customer(session, "C-9", "commercial")
    _spiky_day(session, cid)
    session.commit()
    run_vee(session, start=START, end=START + timedelta(days=1), customer_classes=service_point_classes)
    session.commit()
    return cid, session.scalars(select(VeeException.id)).one()


def test_assign_comment_and_edit_makes_a_new_version_that_later_data_keeps(session):
    cid, xid = _exception(session)
    queue.assign(session, xid, "asha", actor="lead")
    queue.comment(session, xid, "customer confirms a welding job", author="asha")
    with pytest.raises(InvalidInput) as exc:
        queue.resolve(session, xid, "edit", actor="asha", values={50: 1.2})
    assert exc.value.code == "vee.edit_reason_missing"
    out = queue.resolve(session, xid, "edit", actor="asha", values={50: 1.2}, reason="meter reading photo")
    session.commit()
    assert out["status"] == "resolved" and out["resolution"] == "edit"
    day = MeasurementStore(session).load_days([(cid, DAY)])[(cid, DAY)]
    assert day.values[50] == 1.2 and day.flags[50] == Quality.EDITED and day.raw[50] == 40.0
    assert [h.reason for h in MeasurementStore(session).history(cid, DAY)][-1] == "edit"
    edit = session.scalars(select(AuditEntry).where(AuditEntry.action == "vee.interval_edited")).one()
    assert edit.before["values"] == [40.0] and edit.after["reason"] == "meter reading photo"
    shown = queue.get_exception(session, xid)
    assert shown["comments"][0]["author"] == "asha" and shown["values"] == [1.2]
    with pytest.raises(Conflict):
        queue.resolve(session, xid, "accept", actor="asha")

    # new data for another interval re-validates the day: the edit is kept
    MeasurementStore(session).merge({(cid, DAY): (np.array([10]), np.array([0.31]))}, {cid: 900})
    session.commit()
    run_vee(session, start=START, end=START + timedelta(days=1), customer_classes=service_point_classes)
    session.commit()
    day = MeasurementStore(session).load_days([(cid, DAY)])[(cid, DAY)]
    assert day.values[50] == 1.2 and day.flags[50] & Quality.EDITED


def test_reread_request_and_estimate(session):
    cid, xid = _exception(session)
    out = queue.resolve(session, xid, "reread", actor="ops", reason="HES to read again")
    assert out["status"] == "reread_requested"
    req = session.scalars(select(VeeRereadRequest)).one()
    assert req.status == "requested" and req.channel_id == cid and req.window_start == START
    out = queue.resolve(session, xid, "estimate", actor="ops")
    session.commit()
    day = MeasurementStore(session).load_days([(cid, DAY)])[(cid, DAY)]
    assert out["status"] == "resolved" and day.flags[50] == Quality.ESTIMATED | Quality.EDITED
    assert 0.2 < day.values[50] < 0.4  # interpolated between its neighbours
    items, total = queue.list_exceptions(session, status="resolved")
    assert total == 1 and items[0]["resolution"] == "estimate"
    with pytest.raises(InvalidInput):
        queue.resolve(session, xid, "shrug", actor="ops")
