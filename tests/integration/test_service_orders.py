"""Service orders on SQLite and PostgreSQL: a new connection from application to connected, with
its work order, its verification read and its notices; a role or a state the workflow does not
allow refused with a stable code; an order keeps the workflow version it was opened under."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from conftest import attach_customer, make_meter
from meter2cash.api import create_app
from meter2cash.audit.models import AuditEntry
from meter2cash.cis.orders.models import ServiceOrderStep
from meter2cash.cis.orders.service import open_order, take_action, view_order
from meter2cash.cis.orders.workflow import load_workflows, parse_workflow
from meter2cash.cis.parties.models import Account, Person
from meter2cash.core.errors import Conflict, Forbidden
from meter2cash.integration.order_triggers import run_triggers
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.models import Channel
from meter2cash.notify.models import Notification
from meter2cash.workforce.models import WorkOrder

with warnings.catch_warnings():  # the test client warns about its httpx transport on import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def customer(session) -> tuple[int, int]:
    """(account id, meter id) of a customer with a phone and an e-mail address."""
    ids = make_meter(session, "NC1")
    meter_id = session.get(Channel, ids["kwh_import_15m"]).meter_id
    attach_customer(session, meter_id, "NC1", "residential")
    acc = session.scalars(select(Account).where(Account.number == "A-NC1")).one()
    person = session.get(Person, acc.person_id)
    person.phone, person.email = "+911234567890", "nc1@example.org"
    session.commit()
    return acc.id, meter_id


def test_a_new_connection_from_application_to_connected(session, customer):
    account_id, meter_id = customer
    order = open_order(
        session, type="new_connection", by="clerk", role="customer_service", area="urban",
        account_id=account_id, data={"applicant": "P NC1"}, at=T0, reason="walk-in",
    )  # fmt: skip
    number = order.number
    assert number == "NC-2026-000001"
    assert (order.state, order.team) == ("applied", "customer_service")
    assert order.due_at == T0 + timedelta(days=7)  # urban
    assert order.state_due_at == T0 + timedelta(hours=24)
    steps = [
        ("verify", "customer_service", {"verified_by": "clerk"}),
        ("order_installation", "operator", {}),
        ("report_installation", "field", {"meter": "NC1", "transformer": "DT1", "feeder": "F1",
                                          "first_reading": "0.0"}),
        ("verify_read", "system", {}),
        ("confirm", "billing", {}),
    ]  # fmt: skip
    for n, (action, role, data) in enumerate(steps, start=1):
        take_action(session, number, action=action, by=f"user{n}", role=role, data=data,
                    at=T0 + timedelta(hours=n), reason=f"step {n}")  # fmt: skip
        run_triggers(session, T0 + timedelta(hours=n))
    session.commit()
    view = view_order(session, number)
    assert view.state == "connected" and view.closed_at == T0 + timedelta(hours=5)
    assert view.next_actions == []
    assert [s["action"] for s in view.steps] == ["open", *(a for a, _, _ in steps)]
    assert [s["by"] for s in view.steps][1:] == ["user1", "user2", "user3", "user4", "user5"]
    # what the actions set off: a verified notice, an installation work order, a read of the new
    # meter, the connected notice; starting the supply waits for its runner
    wo = session.scalars(select(WorkOrder)).one()
    assert (wo.kind, wo.source, wo.status) == ("meter_installation", f"order:{number}", "open")
    cmd = session.scalars(select(MeterCommand)).one()
    assert (cmd.kind, cmd.meter_id, cmd.params) == ("read", meter_id, {"profile": "1.0.94.91.0.255"})
    notices = session.execute(
        select(Notification.template, Notification.channel).order_by(Notification.id)
    ).all()
    assert [tuple(n) for n in notices] == [
        ("order.verified", "sms"), ("order.verified", "email"),
        ("order.connected", "sms"), ("order.connected", "email"),
    ]  # fmt: skip
    kinds = {(t["kind"], t["status"]) for t in view.triggers}
    assert kinds == {
        ("notification", "done"),
        ("work_order", "done"),
        ("command", "done"),
        ("contract", "pending"),
    }
    audited = session.scalars(
        select(AuditEntry.action).where(AuditEntry.entity == "service_order").order_by(AuditEntry.id)
    ).all()
    assert audited == ["service_order.open", *(f"service_order.{a}" for a, _, _ in steps)]


def test_a_role_or_a_state_the_workflow_does_not_allow_is_refused_and_nothing_changes(session, customer):
    order = open_order(session, type="new_connection", by="clerk", role="customer_service", at=T0)
    with pytest.raises(Forbidden) as exc:
        take_action(session, order.number, action="verify", by="f", role="field", data={"verified_by": "x"})
    assert exc.value.code == "order.role_forbidden"
    with pytest.raises(Conflict) as exc2:
        take_action(session, order.number, action="confirm", by="b", role="billing")
    assert exc2.value.code == "order.action_not_allowed"
    session.commit()
    assert view_order(session, order.number).state == "applied"
    assert session.scalar(select(func.count()).select_from(ServiceOrderStep)) == 1


def test_an_order_keeps_its_workflow_version_and_a_changed_version_must_be_renumbered(session, customer):
    flows = load_workflows()
    old = open_order(session, type="tariff_change", by="b", role="billing", at=T0, flows=flows)
    text = flows["tariff_change"].model_dump_json(by_alias=True)  # the same version, another content
    changed = json.loads(text)
    changed["states"]["requested"]["sla_h"] = 1
    edited = flows["tariff_change"].model_validate(changed)  # … with another content
    with pytest.raises(Conflict) as exc:
        open_order(
            session,
            type="tariff_change",
            by="b",
            role="billing",
            at=T0,
            flows={**flows, "tariff_change": edited},
        )
    assert exc.value.code == "workflow.version_reused"
    session.rollback()
    # a new version with one more state: new orders run it, the order opened before does not
    src = """
type = "tariff_change"
version = "2027-1"
title = "Tariff change"
prefix = "TC"
initial = "requested"
[states.requested]
label = "Requested"
[states.checked]
label = "Checked"
[states.completed]
label = "Done"
final = true
[actions.check]
from = ["requested"]
to = "checked"
roles = ["billing"]
[actions.approve]
from = ["checked"]
to = "completed"
roles = ["billing"]
"""
    v2 = {**flows, "tariff_change": parse_workflow(src, "v2.toml")}
    old = open_order(session, type="tariff_change", by="b", role="billing", at=T0, flows=flows)
    new = open_order(session, type="tariff_change", by="b", role="billing", at=T0, flows=v2)
    session.commit()
    assert (old.workflow_version, new.workflow_version) == ("2026-12-1", "2027-1")
    assert view_order(session, old.number).next_actions == ["approve", "reject"]
    assert view_order(session, new.number).next_actions == ["check"]
    take_action(session, old.number, action="approve", by="b", role="billing",
                data={"tariff": "T2", "effective_from": "2027-01-01"})  # fmt: skip
    assert view_order(session, old.number).state == "completed"


def test_orders_from_the_cli(one_meter_db):
    from meter2cash.cli import app

    runner = CliRunner()
    opened = runner.invoke(app, ["orders", "open", "meter_exchange", "--meter", "M1", "--role", "operator",
                                 "--reason", "meter stuck", "--json"])  # fmt: skip
    assert opened.exit_code == 0, opened.output
    number = json.loads(opened.output)["number"]
    acted = runner.invoke(app, ["orders", "act", number, "order_work", "--role", "operator", "--json"])
    assert acted.exit_code == 0, acted.output
    shown = json.loads(acted.output)
    assert shown["state"] == "work_ordered"
    assert [(t["kind"], t["status"]) for t in shown["triggers"]] == [("work_order", "done")]
    refused = runner.invoke(app, ["orders", "act", number, "report_exchange", "--role", "billing"])
    assert refused.exit_code == 2
    assert "order.role_forbidden" in refused.output
    missing = runner.invoke(app, ["orders", "act", number, "report_exchange", "--role", "field",
                                  "--data", "meter=M2"])  # fmt: skip
    assert missing.exit_code == 2 and "order.missing_data" in missing.output
    listed = runner.invoke(app, ["orders", "list", "--team", "field", "--json"])
    assert [o["number"] for o in json.loads(listed.output)] == [number]
    types = runner.invoke(app, ["orders", "types"])
    assert "new_connection" in types.output and "prepaid_migration" in types.output


def test_orders_through_the_api(platform, customer):
    with TestClient(create_app(platform)) as c:
        types = c.get("/api/v1/order-types").json()
        assert {t["type"] for t in types} >= {"new_connection", "move_out", "prepaid_migration"}
        opening = {"type": "temporary_disconnection", "account": "A-NC1", "meter": "NC1", "by": "desk",
                   "role": "customer_service", "reason": "travelling"}  # fmt: skip
        r = c.post("/api/v1/orders", json=opening)
        assert r.status_code == 201, r.text
        number = r.json()["number"]
        assert r.json()["next_actions"] == ["disconnect", "cancel"]
        actions = f"/api/v1/orders/{number}/actions"
        refused = c.post(actions, json={"action": "disconnect", "role": "consumer"})
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "order.role_forbidden")
        wrong = c.post(actions, json={"action": "reconnect", "role": "operator"})
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (409, "order.action_not_allowed")
        done = c.post(actions, json={"action": "disconnect", "by": "op1"})
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["state"] == "disconnected"
        assert [(t["kind"], t["spec"], t["status"]) for t in body["triggers"]] == [
            ("command", {"command": "disconnect"}, "done")
        ]
        assert c.get(f"/api/v1/orders/{number}").json()["steps"][-1]["by"] == "op1"
        queue = c.get("/api/v1/orders", params={"team": "customer_service", "open": True}).json()
        assert [o["number"] for o in queue] == [number]
        assert c.get("/api/v1/orders/XX-1").json()["error"]["code"] == "order.not_found"
        unknown = c.post("/api/v1/orders", json={"type": "move_out", "account": "nobody"})
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "order.unknown_account")
    with platform.sessions() as s:
        cmd = s.scalars(select(MeterCommand)).one()
        assert (cmd.kind, cmd.reason, cmd.requested_by) == ("disconnect", "order.temporary_disconnection",
                                                            f"order {number}")  # fmt: skip


def test_a_load_change_order_changes_the_contract_and_the_meters_load_limit(session, customer):
    from meter2cash.cis.contracts.changes import agreement_by_number, terms_of
    from meter2cash.cis.parties.models import ServiceAgreement

    _, meter_id = customer
    sa = session.scalars(select(ServiceAgreement).where(ServiceAgreement.number == "SA-NC1")).one()
    order = open_order(session, type="load_change", by="desk", role="customer_service", at=T0,
                       service_agreement_id=sa.id, meter_id=meter_id)  # fmt: skip
    take_action(session, order.number, action="approve", by="eng", role="operator", at=T0,
                data={"sanctioned_kw": "7.5", "effective_from": "2026-12-10"})  # fmt: skip
    take_action(session, order.number, action="complete", by="eng", role="operator", at=T0)
    run_triggers(session, T0)
    session.commit()
    view = view_order(session, order.number)
    assert {(t["kind"], t["status"]) for t in view.triggers} == {
        ("contract", "done"), ("command", "done"), ("notification", "done")
    }  # fmt: skip
    terms = terms_of(session, agreement_by_number(session, "SA-NC1"))
    assert [(str(t.effective_from), t.sanctioned_kw) for t in terms][-1] == ("2026-12-10", Decimal("7.5"))
    cmd = session.scalars(select(MeterCommand)).one()
    assert (cmd.kind, cmd.params) == ("configure", {"load_limit_kw": "7.5"})
    # a second change on the same date is the contract's to refuse: the trigger fails with it
    again = open_order(session, type="load_change", by="desk", role="customer_service", at=T0,
                       service_agreement_id=sa.id, meter_id=meter_id)  # fmt: skip
    take_action(session, again.number, action="approve", by="eng", role="operator", at=T0,
                data={"sanctioned_kw": "9", "effective_from": "2026-12-10"})  # fmt: skip
    take_action(session, again.number, action="complete", by="eng", role="operator", at=T0)
    run_triggers(session, T0)
    failed = [t for t in view_order(session, again.number).triggers if t["kind"] == "contract"]
    assert failed[0]["status"] == "failed" and "contract.duplicate_term" in failed[0]["error"]
