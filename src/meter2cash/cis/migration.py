"""Postpaid ↔ prepaid migration: the old mode's balance is settled into the new one.

Postpaid → prepaid: a credit on 1100 moves into the wallet (Dr 1100, Cr 2100); a debt moves
into the wallet as a negative balance (Dr 2100, Cr 1100) and the open items it settles are
allocated, so the first recharge pays the old debt. Prepaid → postpaid: a wallet credit becomes
credit on receivables (Dr 2100, Cr 1100, left unapplied); a wallet debt becomes an open item
(Dr 1100, Cr 2100, entry kind ``migration``). Takes a Session and flushes; does not commit.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.allocation import allocate
from meter2cash.cis.ledger import RECEIVABLE, WALLET, account_balance, ensure_chart, post
from meter2cash.cis.models import ServiceAgreement
from meter2cash.cis.money_models import Payment, PaymentAllocation, Wallet
from meter2cash.cis.payments import next_receipt_number
from meter2cash.cis.prepaid import ensure_wallets
from meter2cash.core.errors import Conflict, InvalidInput, NotFound


def migrate_payment_mode(
    session: Session, agreement_id: int, to_mode: str, *, on: date, currency: str
) -> Decimal:
    """Switch an agreement to ``to_mode`` and settle the balance; returns the amount moved
    (positive: credit moved; negative: debt moved)."""
    if to_mode not in ("prepaid", "postpaid"):
        raise InvalidInput(f"unknown payment mode {to_mode!r}", code="migration.bad_mode")
    sa = session.get(ServiceAgreement, agreement_id)
    if sa is None:
        raise NotFound(f"no service agreement {agreement_id}", code="service_agreement.not_found")
    if sa.payment_mode == to_mode:
        raise Conflict(f"agreement {sa.number} is already {to_mode}", code="migration.same_mode")
    ensure_chart(session)
    acct = sa.account_id
    sa.payment_mode = to_mode
    session.flush()
    if to_mode == "prepaid":
        ensure_wallets(session, max(on, sa.start_date))
        owed = account_balance(session, acct, RECEIVABLE)  # > 0 debt, < 0 credit
        if owed == 0:
            return Decimal(0)
        entry = post(
            session,
            kind="migration",
            effective_date=on,
            reference=sa.number,
            memo=f"{sa.number} postpaid → prepaid: balance into the wallet",
            lines=[(RECEIVABLE, -owed, acct), (WALLET, owed, acct)],
            currency=currency,
        )
        pay = _transfer(session, acct, owed, on, currency, entry.id, sa.number)
        if owed > 0:
            allocate(session, pay.id, acct, owed)
        else:
            session.add(PaymentAllocation(payment_id=pay.id, account_id=acct, amount=owed))
        session.flush()
        return -owed
    held = -account_balance(session, acct, WALLET)  # > 0 credit, < 0 debt
    if held == 0:
        return Decimal(0)
    entry = post(
        session,
        kind="migration",
        effective_date=on,
        reference=sa.number,
        memo=f"{sa.number} prepaid → postpaid: wallet balance into receivables",
        lines=[(WALLET, held, acct), (RECEIVABLE, -held, acct)],
        currency=currency,
    )
    if held > 0:
        pay = _transfer(session, acct, held, on, currency, entry.id, sa.number)
        session.add(PaymentAllocation(payment_id=pay.id, account_id=acct, amount=held))
    wallet = session.scalars(select(Wallet).where(Wallet.service_agreement_id == sa.id)).first()
    if wallet is not None:
        wallet.alert_level = -1
    session.flush()
    return held


def _transfer(
    session: Session, acct: int, amount: Decimal, on: date, currency: str, entry_id: int, ref: str
) -> Payment:
    pay = Payment(
        receipt_number=next_receipt_number(session, on),
        account_id=acct,
        channel="adjustment",
        purpose="migration",
        amount=amount,
        currency=currency,
        received_on=on,
        reference=ref,
        journal_entry_id=entry_id,
    )
    session.add(pay)
    session.flush()
    return pay
