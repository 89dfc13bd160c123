"""Prepaid wallets: balances, recharges, alerts, emergency credit, disconnect and reconnect requests.

A wallet's balance is the credit on ledger account 2100 for its customer account (sum of its
journal lines, negated: a positive balance is money the utility holds). Nothing here stores a
balance. :func:`evaluate_wallets` checks many wallets at once with the array kernels of
:mod:`meter2cash.cis.prepaid.policy`. Functions take a Session and flush; none commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session

from meter2cash.cis.ledger.journal import WALLET
from meter2cash.cis.ledger.models import JournalLine
from meter2cash.cis.parties.models import Account, Person, ServiceAgreement
from meter2cash.cis.parties.supply import issue_supply_commands
from meter2cash.cis.payments.models import Payment
from meter2cash.cis.payments.receipts import receive
from meter2cash.cis.prepaid.models import Wallet
from meter2cash.cis.prepaid.policy import PrepaidPolicy, alerts_to_fire, disconnect_allowed, threshold_matrix
from meter2cash.core.errors import Conflict, InvalidInput, NotFound
from meter2cash.core.money import format_money
from meter2cash.core.timeutil import utcnow
from meter2cash.db_query import raw
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.commands.service import apply_report, cancel_command, time_out_commands
from meter2cash.notify.models import Notification

_RAW = raw(JournalLine.__table__.c.amount)


def ensure_wallets(session: Session, on: date) -> int:
    """Create the wallet of every prepaid agreement active on ``on`` that has none; returns how many."""
    rows = session.execute(
        select(ServiceAgreement.id, ServiceAgreement.account_id)
        .outerjoin(Wallet, Wallet.service_agreement_id == ServiceAgreement.id)
        .where(
            Wallet.id.is_(None),
            ServiceAgreement.payment_mode == "prepaid",
            ServiceAgreement.start_date <= on,
            or_(ServiceAgreement.end_date.is_(None), ServiceAgreement.end_date >= on),
        )
    ).all()
    if rows:
        session.execute(insert(Wallet), [{"service_agreement_id": s, "account_id": a} for s, a in rows])
    return len(rows)


def wallet_balances(session: Session, account_ids: list[int] | None = None) -> dict[int, int]:
    """Wallet balance per customer account [10⁻⁴ currency], positive = credit held, from the ledger."""
    stmt = select(JournalLine.account_id, func.sum(_RAW)).where(JournalLine.ledger_account == WALLET)
    if account_ids is not None and len(account_ids) < 2000:
        stmt = stmt.where(JournalLine.account_id.in_(account_ids))
    rows = session.execute(stmt.group_by(JournalLine.account_id))
    return {a: -int(v or 0) for a, v in rows if a is not None}


def wallet_balance(session: Session, wallet: Wallet) -> Decimal:
    return Decimal(wallet_balances(session, [wallet.account_id]).get(wallet.account_id, 0)).scaleb(-4)


def wallet_for(session: Session, *, account_id: int | None = None, wallet_id: int | None = None) -> Wallet:
    stmt = select(Wallet)
    stmt = stmt.where(Wallet.id == wallet_id) if wallet_id else stmt.where(Wallet.account_id == account_id)
    wallet = session.scalars(stmt.order_by(Wallet.id)).first()
    if wallet is None:
        raise NotFound("no prepaid wallet for this account", code="wallet.not_found")
    return wallet


@dataclass(slots=True)
class Evaluation:
    wallets: int = 0
    alerts: int = 0
    in_grace: int = 0
    disconnects: int = 0
    deferred: int = 0
    reconnects: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "wallets": self.wallets,
            "alerts": self.alerts,
            "in_grace": self.in_grace,
            "disconnect_requests": self.disconnects,
            "disconnects_deferred": self.deferred,
            "reconnect_requests": self.reconnects,
        }


def evaluate_wallets(
    session: Session,
    at: datetime,
    *,
    tz: str,
    policy: PrepaidPolicy,
    wallet_ids: list[int] | None = None,
    may_disconnect: bool = True,
    currency: str = "INR",
) -> Evaluation:
    """Check wallets at instant ``at``: fire alerts, start grace, request disconnects (only when
    :func:`disconnect_allowed`, and never with ``may_disconnect`` False: the check after a
    recharge, which must not cut off a customer who just paid) and reconnects (always, at once)."""
    stmt = select(
        Wallet.id,
        Wallet.account_id,
        Wallet.service_agreement_id,
        Wallet.supply,
        raw(Wallet.last_recharge),  # raw 10⁻⁴ units: no Decimal per wallet
        Wallet.alert_level,
        raw(Wallet.emergency_credit),
        Wallet.grace_until,
    )
    # only wallets of agreements prepaid now: a wallet left by a change to postpaid is settled
    # and never cut anyone off
    stmt = stmt.join(ServiceAgreement, ServiceAgreement.id == Wallet.service_agreement_id).where(
        ServiceAgreement.payment_mode == "prepaid"
    )
    if wallet_ids is not None:
        stmt = stmt.where(Wallet.id.in_(wallet_ids))
    rows = session.execute(stmt.order_by(Wallet.id)).all()
    ev = Evaluation(wallets=len(rows))
    if not rows:
        return ev
    cols = list(zip(*rows, strict=True))
    ids, accts, sas, supply = list(cols[0]), list(cols[1]), list(cols[2]), np.asarray(cols[3], dtype=object)
    bal_of = wallet_balances(session, accts)
    balance = np.fromiter((bal_of.get(a, 0) for a in accts), dtype=np.int64, count=len(accts))
    last = np.asarray(cols[4], dtype=np.int64)
    fired = np.asarray(cols[5], dtype=np.int64)
    emergency = np.asarray(cols[6], dtype=np.int64)
    grace = list(cols[7])
    level, fire = alerts_to_fire(balance, threshold_matrix(last, policy.alerts), fired)
    out_of_credit = balance <= -emergency
    updates: list[dict[str, Any]] = []
    notes: list[tuple[int, int, int]] = []
    commands: list[dict[str, Any]] = []
    allowed = bool(disconnect_allowed([int(at.timestamp())], tz, policy)[0])
    grace_end = at + timedelta(hours=policy.grace_hours)
    for k in np.flatnonzero(
        (level != fired) | out_of_credit | (balance > 0) & (supply != "connected")
    ).tolist():
        row: dict[str, Any] = {"id": ids[k]}
        if level[k] != fired[k]:
            row["alert_level"] = int(level[k])
            if fire[k]:
                notes.append((accts[k], int(level[k]), int(balance[k])))
        if out_of_credit[k] and supply[k] == "connected" and may_disconnect:
            until = grace[k]
            if until is None:
                until = row["grace_until"] = grace_end
            if until > at:
                ev.in_grace += 1
            elif allowed:
                commands.append(_command(sas[k], "disconnect", "prepaid.no_credit", at, policy))
                row["supply"] = "disconnect_pending"
                ev.disconnects += 1
            else:
                ev.deferred += 1
        elif balance[k] > 0:
            if grace[k] is not None:
                row["grace_until"] = None
            if supply[k] == "disconnect_pending" and _cancel_unsent_disconnect(session, sas[k], at):
                row["supply"] = "connected"
            elif supply[k] in ("disconnected", "disconnect_pending"):
                commands.append(_command(sas[k], "connect", "prepaid.recharged", at, policy))
                row["supply"] = "reconnect_pending"
                ev.reconnects += 1
        if len(row) > 1:
            updates.append(row)
    if updates:
        for keys in {tuple(sorted(r)) for r in updates}:
            session.execute(update(Wallet), [r for r in updates if tuple(sorted(r)) == keys])
    if commands:
        issue_supply_commands(session, commands, by="prepaid", at=at)
    if notes:
        _alert_notifications(session, notes, policy, currency)
    ev.alerts = len(notes)
    session.flush()
    return ev


def _cancel_unsent_disconnect(session: Session, agreement_id: int, at: datetime) -> bool:
    """A disconnect not yet sent to the meter is withdrawn (``cancelled`` in its lifecycle) when
    the balance is restored; returns whether one was."""
    ids = session.scalars(
        select(MeterCommand.id).where(
            MeterCommand.service_agreement_id == agreement_id,
            MeterCommand.kind == "disconnect",
            MeterCommand.status.in_(("requested", "queued")),
        )
    ).all()
    for cid in ids:
        cancel_command(session, cid, by="prepaid", reason="balance restored before sending", at=at)
    return bool(ids)


def _command(
    agreement_id: int, kind: str, reason: str, at: datetime, policy: PrepaidPolicy
) -> dict[str, Any]:
    return {
        "service_agreement_id": agreement_id,
        "kind": kind,
        "reason": reason,
        "requested_at": at,
        "deadline": at + timedelta(hours=policy.command_timeout_h),
    }


def _alert_notifications(
    session: Session, notes: list[tuple[int, int, int]], policy: PrepaidPolicy, currency: str
) -> None:
    """One low-balance SMS per alert fired (to the account holder's phone, when known)."""
    accts = sorted({a for a, _, _ in notes})
    phone = dict(
        session.execute(
            select(Account.id, Person.phone)
            .join(Person, Person.id == Account.person_id)
            .where(Account.id.in_(accts))
        ).all()
        if len(accts) < 2000
        else session.execute(
            select(Account.id, Person.phone).join(Person, Person.id == Account.person_id)
        ).all()
    )
    session.execute(
        insert(Notification),
        [
            {
                "account_id": a,
                "channel": "sms",
                "recipient": phone.get(a) or "",
                "template": "low_balance",
                "context": {
                    "threshold": policy.alerts[lvl],
                    "balance": format_money(Decimal(b).scaleb(-4), currency),
                },
                "status": "pending" if phone.get(a) else "failed",
                "error": "" if phone.get(a) else "no phone number",
            }
            for a, lvl, b in notes
        ],
    )


def recharge_account(
    session: Session,
    account_id: int,
    amount: Decimal,
    *,
    channel: str,
    currency: str,
    received_on: date | None = None,
    reference: str = "",
    external_id: str | None = None,
    office: str = "",
    at: datetime | None = None,
    tz: str = "Asia/Kolkata",
    policy: PrepaidPolicy | None = None,
) -> Payment:
    """Top up the prepaid wallet of an account: Dr 1000, Cr 2100; reset alerts, and request
    reconnection at once if the balance is now positive. Emergency credit in use ends only when
    the recharge brings the balance above zero (it repays the emergency credit first), and a
    recharge never leads to a disconnection, whatever balance it leaves: that is for the
    scheduled evaluation to decide under the policy."""

    try:
        wallet = wallet_for(session, account_id=account_id)
    except NotFound:
        ensure_wallets(session, received_on or utcnow().date())
        wallet = wallet_for(session, account_id=account_id)
    payment = receive(
        session,
        account_id,
        amount,
        channel=channel,
        currency=currency,
        purpose="recharge",
        received_on=received_on,
        reference=reference,
        external_id=external_id,
        office=office,
    )
    wallet.last_recharge = amount
    if wallet_balance(session, wallet) > 0:
        wallet.emergency_credit = Decimal(0)
    session.flush()
    evaluate_wallets(
        session, at or utcnow(), tz=tz, policy=policy or PrepaidPolicy(), wallet_ids=[wallet.id],
        may_disconnect=False, currency=currency,
    )  # fmt: skip
    return payment


def grant_emergency_credit(session: Session, wallet_id: int, policy: PrepaidPolicy) -> Decimal:
    """Let the wallet run ``policy.emergency_credit`` below zero until the next recharge (once)."""
    wallet = wallet_for(session, wallet_id=wallet_id)
    if wallet.emergency_credit > 0:
        raise Conflict("emergency credit is already in use", code="wallet.emergency_in_use")
    if policy.emergency_credit <= 0:
        raise InvalidInput("emergency credit is not offered", code="wallet.no_emergency_credit")
    wallet.emergency_credit = policy.emergency_credit
    wallet.grace_until = None
    session.flush()
    return policy.emergency_credit


def supply_after(cmd: MeterCommand) -> str | None:
    """The supply a connect or disconnect command leaves: the relay state read back from the meter
    once it is known (never assumed from an ``executed`` report); the state before the command
    when it failed, timed out or was cancelled without a read-back; ``None`` while unconfirmed."""
    if cmd.relay_state is not None:
        return cmd.relay_state
    if cmd.status in ("failed", "timed_out", "cancelled"):
        return "connected" if cmd.kind == "disconnect" else "disconnected"
    return None


def follow_supply(session: Session, cmds: list[MeterCommand]) -> None:
    """Each settled supply command's wallet takes the supply it leaves (in command order); a relay
    read-back stands for the command it was issued for."""
    for cmd in cmds:
        target = cmd
        if cmd.kind == "read" and isinstance(cmd.params.get("for_command"), int):
            target = session.get(MeterCommand, cmd.params["for_command"]) or cmd
        if target.kind not in ("connect", "disconnect") or target.service_agreement_id is None:
            continue
        state = supply_after(target)
        if state:
            session.execute(
                update(Wallet)
                .where(Wallet.service_agreement_id == target.service_agreement_id)
                .values(supply=state)
            )
    session.flush()


def report_command(
    session: Session,
    command_id: int,
    status: str,
    *,
    at: datetime | None = None,
    detail: str = "",
    result: dict[str, Any] | None = None,
    by: str = "hes",
) -> MeterCommand:
    """A head-end report on a command: the command moves along its lifecycle
    (:func:`meter2cash.mdm.commands.service.apply_report`: ``command.not_found``,
    ``command.bad_transition``), then the wallet's supply follows the relay read back
    (:func:`supply_after`)."""
    cmd = apply_report(
        session, command_id=command_id, status=status, at=at or utcnow(), detail=detail, result=result, by=by
    )
    follow_supply(session, [cmd])
    return cmd


def time_out_supply_commands(session: Session, at: datetime, policy: PrepaidPolicy) -> list[MeterCommand]:
    """Commands without a final report ``policy.command_timeout_h`` hours after their request:
    never sent → timed out (the wallet keeps the supply it had); sent → in doubt until the relay
    read back settles it (``m2c prepaid time-out-commands``)."""
    cmds = time_out_commands(session, at, policy.command_timeout_h)
    follow_supply(session, cmds)
    return cmds


def reconnect_report(session: Session, target_h: int = 2) -> dict[str, Any]:
    """Confirmed reconnections (relay read back connected): count, median and worst
    request-to-confirmation time [min], share on target."""
    rows = session.execute(
        select(MeterCommand.requested_at, MeterCommand.relay_confirmed_at).where(
            MeterCommand.kind == "connect", MeterCommand.relay_state == "connected"
        )
    ).all()
    minutes = np.asarray([(f - r).total_seconds() / 60 for r, f in rows if f], dtype=np.float64)
    if minutes.size == 0:
        return {"executed": 0, "median_min": None, "max_min": None, "within_target": None}
    return {
        "executed": int(minutes.size),
        "median_min": round(float(np.median(minutes)), 1),
        "max_min": round(float(minutes.max()), 1),
        "within_target": round(float((minutes <= target_h * 60).mean()), 4),
    }
