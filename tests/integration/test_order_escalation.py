"""Escalation of service orders past their state's SLA on SQLite and PostgreSQL: each level once
per stay in a state, afresh in the next state, one notice per level and pass; and, over random
passes, never a level twice and never a level before its time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from meter2cash.cis.orders.escalation import escalate, escalations_of, open_escalations
from meter2cash.cis.orders.models import ServiceOrderEscalation
from meter2cash.cis.orders.service import open_order, take_action
from meter2cash.cis.orders.workflow import load_workflows, parse_workflow
from meter2cash.notify.models import Notification

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


def test_levels_fire_once_per_stay_in_a_state(session):
    orders = [
        open_order(session, type="new_connection", by="d", role="customer_service", at=T0) for _ in range(3)
    ]
    session.commit()
    # "applied" allows 24 h; the levels are at once past it and a day later
    assert escalate(session, T0 + 23 * H)["raised"] == {}
    assert escalate(session, T0 + 25 * H)["raised"] == {"new_connection:1": 3}
    assert escalate(session, T0 + 26 * H)["raised"] == {}
    assert escalate(session, T0 + 49 * H)["raised"] == {"new_connection:2": 3}
    assert escalate(session, T0 + 100 * H)["raised"] == {}  # two levels only
    # one order moves on and runs late in its next state ("verified": 24 h)
    take_action(session, orders[0].number, action="verify", by="d", role="customer_service",
                data={"verified_by": "d"}, at=T0 + 50 * H)  # fmt: skip
    assert escalate(session, T0 + 75 * H)["raised"] == {"new_connection:1": 1}
    session.commit()
    assert session.scalar(select(func.count()).select_from(ServiceOrderEscalation)) == 7
    assert [(e["state"], e["level"], e["to"]) for e in escalations_of(session, orders[0].id)] == [
        ("applied", 1, "supervisor"), ("applied", 2, "manager"), ("verified", 1, "supervisor"),
    ]  # fmt: skip
    assert open_escalations(session) == 3


def test_a_level_with_an_address_gets_one_notice_per_pass(session):
    text = """
type = "small"
version = "1"
title = "Small job"
prefix = "SM"
initial = "open"
[[escalation]]
after_h = 2
to = "lead"
notify = "lead@example.org"
[states.open]
label = "Open"
sla_h = 1
[states.done]
label = "Done"
final = true
[actions.finish]
from = ["open"]
to = "done"
roles = ["operator"]
"""
    flows = {**load_workflows(), "small": parse_workflow(text, "small.toml")}
    for _ in range(4):
        open_order(session, type="small", by="d", role="operator", at=T0, flows=flows)
    assert escalate(session, T0 + 2 * H)["raised"] == {}  # 1 h past the SLA: not yet
    done = escalate(session, T0 + 3 * H)
    assert done == {"raised": {"small:1": 4}, "notices": 1}
    session.commit()
    n = session.scalars(select(Notification)).one()
    got = (n.recipient, n.template, n.context["count"], n.context["to"])
    assert got == ("lead@example.org", "order.escalated", "4", "lead")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_over_random_passes_no_level_fires_twice_or_early(session, seed):
    rng = random.Random(seed)
    wf = load_workflows()["new_connection"]
    levels = [lvl.after_h for lvl in wf.escalation]
    opened = [T0 + timedelta(hours=rng.uniform(0, 48)) for _ in range(6)]
    orders = [
        open_order(session, type="new_connection", by="d", role="customer_service", at=t) for t in opened
    ]
    now = T0
    for _ in range(12):
        now += timedelta(hours=rng.uniform(0, 20))
        escalate(session, now)
        rows = session.execute(
            select(ServiceOrderEscalation.order_id, ServiceOrderEscalation.level, ServiceOrderEscalation.at)
        ).all()
        assert len(rows) == len({(o, lvl) for o, lvl, _ in rows})  # never a level twice
        for order, t in zip(orders, opened, strict=True):
            due = t + timedelta(hours=24)  # "applied" allows 24 h
            expected = sum(1 for h in levels if due + timedelta(hours=h) <= now)
            got = [(lvl, at) for o, lvl, at in rows if o == order.id]
            assert len(got) == expected
            assert all(at >= due + timedelta(hours=levels[lvl - 1]) for lvl, at in got)  # never early
