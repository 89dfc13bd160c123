"""Connection commands on SQLite and PostgreSQL: the MDM lifecycle (status moves, their times,
time-out after a number of hours) and the prepaid wallet's supply following each outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from conftest import attach_customer, make_meter
from meter2cash.cis.parties.models import ServiceAgreement
from meter2cash.cis.prepaid.models import Wallet
from meter2cash.cis.prepaid.policy import PrepaidPolicy
from meter2cash.cis.prepaid.wallet import report_command, time_out_supply_commands
from meter2cash.core.errors import Conflict, NotFound
from meter2cash.mdm.commands.lifecycle import advance_command, latest_command, time_out_commands
from meter2cash.mdm.commands.models import ConnectionCommand
from meter2cash.mdm.models import Channel

T0 = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)


def _agreement(session, serial: str, supply: str = "connected") -> int:
    ids = make_meter(session, serial)
    attach_customer(session, session.get(Channel, ids["kwh_import_15m"]).meter_id, serial, "residential",
                    payment_mode="prepaid")  # fmt: skip
    sa = session.scalars(select(ServiceAgreement).where(ServiceAgreement.number == f"SA-{serial}")).one()
    session.add(Wallet(service_agreement_id=sa.id, account_id=sa.account_id, supply=supply))
    session.flush()
    return sa.id


def _command(session, sa_id: int, action: str, status: str = "requested", hours_ago: float = 0) -> int:
    cmd = ConnectionCommand(service_agreement_id=sa_id, action=action, reason="manual", status=status,
                            requested_at=T0 - timedelta(hours=hours_ago))  # fmt: skip
    session.add(cmd)
    session.flush()
    return cmd.id


def _supply(session, sa_id: int) -> str:
    session.expire_all()
    return session.scalars(select(Wallet.supply).where(Wallet.service_agreement_id == sa_id)).one()


def test_each_step_is_stamped_and_a_final_status_stays(session):
    sa = _agreement(session, "CMD1")
    cid = _command(session, sa, "disconnect")
    sent, ack, done = T0 + timedelta(minutes=1), T0 + timedelta(minutes=3), T0 + timedelta(minutes=40)
    advance_command(session, cid, "sent", at=sent)
    advance_command(session, cid, "acknowledged", at=ack)
    cmd = advance_command(session, cid, "executed", at=done, detail="relay open")
    assert (cmd.status, cmd.sent_at, cmd.acknowledged_at, cmd.finished_at, cmd.detail) == (
        "executed", sent, ack, done, "relay open"
    )  # fmt: skip
    with pytest.raises(Conflict) as info:
        advance_command(session, cid, "failed", at=done)
    assert info.value.code == "command.bad_transition"
    with pytest.raises(NotFound) as missing:
        advance_command(session, cid + 1000, "sent")
    assert missing.value.code == "command.not_found"
    # the MDM lifecycle alone leaves the wallet as it was
    assert _supply(session, sa) == "connected"


def test_acknowledged_cannot_go_back_to_sent(session):
    cid = _command(session, _agreement(session, "CMD2"), "reconnect", status="acknowledged")
    with pytest.raises(Conflict):
        advance_command(session, cid, "sent")
    assert session.get(ConnectionCommand, cid).status == "acknowledged"


def test_time_out_after_the_hours_given(session):
    sa = _agreement(session, "CMD3")
    old = _command(session, sa, "disconnect", hours_ago=3)
    old_ack = _command(session, sa, "disconnect", status="acknowledged", hours_ago=2.5)
    on_the_limit = _command(session, sa, "disconnect", hours_ago=2)  # requested exactly 2 h before
    done = _command(session, sa, "disconnect", status="failed", hours_ago=9)
    out = time_out_commands(session, T0, 2)
    assert [c.id for c in out] == [old, old_ack]
    assert all(c.status == "timed_out" and c.finished_at == T0 for c in out)
    assert session.get(ConnectionCommand, on_the_limit).status == "requested"
    assert session.get(ConnectionCommand, done).status == "failed"
    assert latest_command(session, sa).id == done  # the last one made, whatever its status


def test_wallet_follows_each_outcome(session):
    cut = _agreement(session, "CMD4", supply="disconnect_pending")
    cid = _command(session, cut, "disconnect")
    report_command(session, cid, "sent", at=T0)
    assert _supply(session, cut) == "disconnect_pending"  # nothing is decided yet
    report_command(session, cid, "executed", at=T0 + timedelta(minutes=20))
    assert _supply(session, cut) == "disconnected"

    failed = _agreement(session, "CMD5", supply="reconnect_pending")
    report_command(session, _command(session, failed, "reconnect"), "failed", at=T0)
    assert _supply(session, failed) == "disconnected"  # the relay stayed open


def test_timed_out_commands_leave_the_supply_as_it_was(session):
    policy = PrepaidPolicy(command_timeout_h=4)
    pending_cut = _agreement(session, "CMD6", supply="disconnect_pending")
    pending_on = _agreement(session, "CMD7", supply="reconnect_pending")
    young = _agreement(session, "CMD8", supply="disconnect_pending")
    a = _command(session, pending_cut, "disconnect", status="sent", hours_ago=5)
    b = _command(session, pending_on, "reconnect", hours_ago=4.5)
    _command(session, young, "disconnect", hours_ago=3)
    assert [c.id for c in time_out_supply_commands(session, T0, policy)] == [a, b]
    assert _supply(session, pending_cut) == "connected"
    assert _supply(session, pending_on) == "disconnected"
    assert _supply(session, young) == "disconnect_pending"
