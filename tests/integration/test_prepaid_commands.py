"""The command store on SQLite and PostgreSQL: statuses and their audit trail, sending and sending
again with backoff, deadlines (timed out or in doubt), idempotency keys, groups, the relay read
back before the supply is known, and the prepaid wallet following it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from conftest import attach_customer, make_meter
from meter2cash.cis.parties.models import ServiceAgreement
from meter2cash.cis.prepaid.models import Wallet
from meter2cash.cis.prepaid.policy import PrepaidPolicy
from meter2cash.cis.prepaid.wallet import report_command, time_out_supply_commands
from meter2cash.core.errors import Conflict, InvalidInput, NotFound
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.commands.service import (
    apply_report,
    command_steps,
    due_commands,
    expire_commands,
    group_progress,
    issue_command,
    issue_group,
    latest_command,
    mark_sent,
    time_out_commands,
)
from meter2cash.mdm.models import Channel

T0 = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)


def _agreement(session, serial: str, supply: str = "connected") -> tuple[int, int]:
    ids = make_meter(session, serial)
    meter_id = session.get(Channel, ids["kwh_import_15m"]).meter_id
    attach_customer(session, meter_id, serial, "residential", payment_mode="prepaid")
    sa = session.scalars(select(ServiceAgreement).where(ServiceAgreement.number == f"SA-{serial}")).one()
    session.add(Wallet(service_agreement_id=sa.id, account_id=sa.account_id, supply=supply))
    session.flush()
    return sa.id, meter_id


def _command(
    session, sa_meter: tuple[int, int], kind: str, status: str = "requested", hours_ago: float = 0
) -> int:
    sa_id, meter_id = sa_meter
    cmd = issue_command(session, kind=kind, meter_id=meter_id, service_agreement_id=sa_id, reason="manual",
                        requested_by="test", at=T0 - timedelta(hours=hours_ago))  # fmt: skip
    for step in {"sent": ["sent"], "acknowledged": ["sent", "acknowledged"], "failed": ["failed"]}.get(
        status, []
    ):
        apply_report(session, command_id=cmd.id, status=step, at=T0 - timedelta(hours=hours_ago))
    return cmd.id


def _supply(session, sa_id: int) -> str:
    session.expire_all()
    return session.scalars(select(Wallet.supply).where(Wallet.service_agreement_id == sa_id)).one()


def _read_backs(session, command_id: int) -> list[MeterCommand]:
    return [
        c
        for c in session.scalars(select(MeterCommand).where(MeterCommand.kind == "read"))
        if c.params.get("for_command") == command_id
    ]


def test_each_step_is_stamped_in_the_trail_and_a_final_status_stays(session):
    sa = _agreement(session, "CMD1")
    cid = _command(session, sa, "disconnect")
    sent, ack, done = T0 + timedelta(minutes=1), T0 + timedelta(minutes=3), T0 + timedelta(minutes=40)
    apply_report(session, command_id=cid, status="sent", at=sent)
    apply_report(session, command_id=cid, status="acknowledged", at=ack)
    cmd = apply_report(session, command_id=cid, status="executed", at=done, detail="relay open",
                       result={"relay": "disconnected"})  # fmt: skip
    assert (cmd.status, cmd.sent_at, cmd.acknowledged_at, cmd.finished_at, cmd.detail) == (
        "executed", sent, ack, done, "relay open"
    )  # fmt: skip
    assert (cmd.relay_state, cmd.relay_confirmed_at) == ("disconnected", done)
    trail = [(s.from_status, s.to_status, s.at, s.by) for s in command_steps(session, cid)]
    assert trail == [
        (None, "requested", T0, "test"),
        ("requested", "sent", sent, "hes"),
        ("sent", "acknowledged", ack, "hes"),
        ("acknowledged", "executed", done, "hes"),
    ]
    # a duplicate report changes nothing, not even the trail
    apply_report(session, command_id=cid, status="executed", at=done + timedelta(hours=1))
    assert len(command_steps(session, cid)) == 4
    with pytest.raises(Conflict) as info:
        apply_report(session, command_id=cid, status="failed", at=done)
    assert info.value.code == "command.bad_transition"
    with pytest.raises(NotFound) as missing:
        apply_report(session, command_id=cid + 1000, status="sent", at=done)
    assert missing.value.code == "command.not_found"
    with pytest.raises(InvalidInput) as relay:
        apply_report(session, command_id=_command(session, sa, "connect"), status="executed", at=done,
                     result={"relay": "open"})  # fmt: skip
    assert relay.value.code == "command.bad_relay_state"


def test_a_late_sent_report_leaves_an_acknowledged_command_as_it_is(session):
    cid = _command(session, _agreement(session, "CMD2"), "connect", status="acknowledged")
    steps = len(command_steps(session, cid))
    apply_report(session, command_id=cid, status="sent", at=T0 + timedelta(minutes=9))
    cmd = session.get(MeterCommand, cid)
    assert (cmd.status, cmd.sent_at, len(command_steps(session, cid))) == ("acknowledged", T0, steps)


def test_at_the_deadline_unsent_times_out_and_sent_is_in_doubt_with_a_read_back(session):
    sa = _agreement(session, "CMD3")
    old = _command(session, sa, "disconnect", hours_ago=3)
    old_ack = _command(session, sa, "disconnect", status="acknowledged", hours_ago=2.5)
    on_the_limit = _command(session, sa, "disconnect", hours_ago=2)  # requested exactly 2 h before
    done = _command(session, sa, "disconnect", status="failed", hours_ago=9)
    out = time_out_commands(session, T0, 2)
    assert [(c.id, c.status) for c in out] == [(old, "timed_out"), (old_ack, "in_doubt")]
    assert all(c.finished_at == T0 for c in out)
    assert session.get(MeterCommand, on_the_limit).status == "requested"
    assert session.get(MeterCommand, done).status == "failed"
    # the relay of the command in doubt is read back; the read-back settles it
    (rb,) = _read_backs(session, old_ack)
    assert (rb.params["profile"], rb.reason, rb.status) == ("relay", "relay.read_back", "requested")
    apply_report(session, command_id=rb.id, status="sent", at=T0 + timedelta(minutes=1))
    apply_report(session, command_id=rb.id, status="executed", at=T0 + timedelta(minutes=2),
                 result={"relay": "disconnected"})  # fmt: skip
    settled = session.get(MeterCommand, old_ack)
    assert (settled.status, settled.relay_state) == ("executed", "disconnected")
    assert latest_command(session, sa[0]).id == done  # the last supply command made


def test_the_wallet_follows_the_relay_read_back_never_the_executed_report(session):
    cut = _agreement(session, "CMD4", supply="disconnect_pending")
    cid = _command(session, cut, "disconnect")
    report_command(session, cid, "sent", at=T0)
    assert _supply(session, cut[0]) == "disconnect_pending"  # nothing is decided yet
    report_command(session, cid, "executed", at=T0 + timedelta(minutes=20))
    assert _supply(session, cut[0]) == "disconnect_pending"  # executed, but not read back yet
    (rb,) = _read_backs(session, cid)
    report_command(session, rb.id, "sent", at=T0 + timedelta(minutes=21))
    report_command(
        session, rb.id, "executed", at=T0 + timedelta(minutes=22), result={"relay": "disconnected"}
    )
    assert _supply(session, cut[0]) == "disconnected"

    # a relay that did not move: read back connected after an "executed" disconnect
    stuck = _agreement(session, "CMD4B", supply="disconnect_pending")
    sid = _command(session, stuck, "disconnect")
    report_command(session, sid, "sent", at=T0)
    report_command(session, sid, "executed", at=T0 + timedelta(minutes=5), result={"relay": "connected"})
    assert _supply(session, stuck[0]) == "connected"
    assert session.get(MeterCommand, sid).detail == "relay read back as connected, not disconnected"

    failed = _agreement(session, "CMD5", supply="reconnect_pending")
    report_command(session, _command(session, failed, "connect"), "failed", at=T0)
    assert _supply(session, failed[0]) == "disconnected"  # the relay stayed open


def test_timed_out_commands_leave_the_supply_as_it_was_and_sent_ones_wait(session):
    policy = PrepaidPolicy(command_timeout_h=4)
    pending_cut = _agreement(session, "CMD6", supply="disconnect_pending")
    pending_on = _agreement(session, "CMD7", supply="reconnect_pending")
    young = _agreement(session, "CMD8", supply="disconnect_pending")
    a = _command(session, pending_cut, "disconnect", status="sent", hours_ago=5)
    b = _command(session, pending_on, "connect", hours_ago=4.5)
    _command(session, young, "disconnect", hours_ago=3)
    assert [c.id for c in time_out_supply_commands(session, T0, policy)] == [a, b]
    assert _supply(session, pending_cut[0]) == "disconnect_pending"  # in doubt: the meter may have acted
    assert _supply(session, pending_on[0]) == "disconnected"
    assert _supply(session, young[0]) == "disconnect_pending"


def test_no_more_than_the_policy_allows_are_at_the_head_end_at_once(session):
    from meter2cash.mdm.commands.policy import load_policy

    window = load_policy().model_copy(update={"max_in_flight": 2})
    _, meter = _agreement(session, "CMDW")
    ids = [
        issue_command(session, kind="read", meter_id=meter, reason="manual", requested_by="op", at=T0,
                      params={"profile": "1.0.94.91.0.255"}).id
        for _ in range(5)
    ]  # fmt: skip
    assert [c.id for c in due_commands(session, T0, policy=window)] == ids[:2]
    for i in ids[:2]:
        mark_sent(session, i, at=T0, message_id=f"cmd-{i}-1", policy=window)
    assert due_commands(session, T0, policy=window) == []  # two out, none answered
    apply_report(session, command_id=ids[0], status="acknowledged", at=T0)
    assert due_commands(session, T0, policy=window) == []  # acknowledged: still at the head-end
    apply_report(session, command_id=ids[0], status="executed", at=T0)
    assert [c.id for c in due_commands(session, T0, policy=window)] == [ids[2]]
    mark_sent(session, ids[2], at=T0, message_id=f"cmd-{ids[2]}-1", policy=window)
    # the window is full, but a command sent without an answer is sent again when its wait is over
    later = T0 + timedelta(seconds=180)
    assert [c.id for c in due_commands(session, later, policy=window)] == [ids[1], ids[2]]


def test_sending_again_with_backoff_until_the_attempts_are_used(session):
    _, meter = _agreement(session, "CMD9")
    cmd = issue_command(session, kind="disconnect", meter_id=meter, reason="manual", requested_by="op", at=T0)
    # the shipped policy: answer wait 120 s, first wait 60 s doubling, 3 attempts, 6 h deadline
    assert cmd.deadline == T0 + timedelta(hours=6)
    assert [c.id for c in due_commands(session, T0)] == [cmd.id]
    mark_sent(session, cmd.id, at=T0, message_id="cmd-x-1")
    assert cmd.next_attempt_at == T0 + timedelta(seconds=180)
    assert due_commands(session, T0 + timedelta(seconds=179)) == []
    assert [c.id for c in due_commands(session, T0 + timedelta(seconds=180))] == [cmd.id]
    mark_sent(session, cmd.id, at=T0 + timedelta(seconds=180), message_id="cmd-x-2")
    assert cmd.next_attempt_at == T0 + timedelta(seconds=180 + 120 + 120)
    mark_sent(session, cmd.id, at=T0 + timedelta(seconds=420), message_id="cmd-x-3")
    assert (cmd.attempts, cmd.next_attempt_at, cmd.status, cmd.message_id) == (3, None, "sent", "cmd-x-3")
    assert due_commands(session, T0 + timedelta(hours=1)) == []
    # the deadline passes without an answer: in doubt, and the relay is read back
    assert [c.status for c in expire_commands(session, T0 + timedelta(hours=6))] == ["in_doubt"]
    assert len(_read_backs(session, cmd.id)) == 1
    # once acknowledged, a command is not sent again
    other = issue_command(
        session, kind="time_sync", meter_id=meter, reason="manual", requested_by="op", at=T0
    )
    mark_sent(session, other.id, at=T0, message_id="cmd-y-1")
    apply_report(session, command_id=other.id, status="acknowledged", at=T0 + timedelta(seconds=5))
    assert other.next_attempt_at is None
    assert other.id not in [c.id for c in due_commands(session, T0 + timedelta(hours=1))]


def test_an_idempotency_key_makes_issuing_safe_to_repeat(session):
    _, meter = _agreement(session, "CMD10")
    first = issue_command(session, kind="read", meter_id=meter, reason="oms.is_live", requested_by="oms",
                          params={"profile": "1.0.94.91.0.255"}, idempotency_key="oms-42", at=T0)  # fmt: skip
    again = issue_command(session, kind="read", meter_id=meter, reason="oms.is_live", requested_by="oms",
                          params={"profile": "1.0.94.91.0.255"}, idempotency_key="oms-42", at=T0)  # fmt: skip
    assert first.id == again.id
    assert session.query(MeterCommand).filter(MeterCommand.idempotency_key == "oms-42").count() == 1
    with pytest.raises(InvalidInput) as bad:
        issue_command(session, kind="explode", meter_id=meter, reason="x", requested_by="op")
    assert bad.value.code == "command.bad_kind"
    with pytest.raises(NotFound) as unknown:
        issue_command(session, kind="time_sync", meter_id=10**6, reason="x", requested_by="op")
    assert unknown.value.code == "command.unknown_meter"
    with pytest.raises(InvalidInput) as params:
        issue_command(session, kind="configure", meter_id=meter, reason="x", requested_by="op",
                      params={"load_limit_kw": 5, "reset": "md"})  # fmt: skip
    assert (params.value.code, params.value.message) == (
        "command.bad_params", "configure params: Value error, give exactly one of load_limit_kw, tou, reset"
    )  # fmt: skip


def test_a_group_outcome_follows_its_children(session):
    meters = [_agreement(session, f"GRP{i}")[1] for i in range(3)]
    parent = issue_group(
        session, kind="time_sync", meter_ids=meters, reason="manual", requested_by="op", at=T0
    )
    children = list(session.scalars(select(MeterCommand).where(MeterCommand.parent_id == parent.id)))
    assert sorted(c.meter_id for c in children) == sorted(meters)
    assert (parent.status, group_progress(session, parent.id).outcome) == ("pending", "pending")
    for c in children:
        apply_report(session, command_id=c.id, status="sent", at=T0)
    apply_report(session, command_id=children[0].id, status="executed", at=T0 + timedelta(minutes=1))
    apply_report(session, command_id=children[1].id, status="executed", at=T0 + timedelta(minutes=1))
    assert parent.status == "pending"
    apply_report(session, command_id=children[2].id, status="failed", at=T0 + timedelta(minutes=2))
    assert parent.status == "partial"
    assert parent.result["by_status"] == {"executed": 2, "failed": 1}
    with pytest.raises(InvalidInput) as empty:
        issue_group(session, kind="time_sync", meter_ids=[], reason="manual", requested_by="op")
    assert empty.value.code == "command.empty_group"
