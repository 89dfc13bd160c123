"""Settling a balance between the wallet and receivables when an agreement changes its payment mode.

One entry of kind ``migration`` moves it between 1100 and 2100 (see :func:`settle_balance`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.ledger.journal import RECEIVABLE, WALLET, account_balance, ensure_chart, post
from meter2cash.cis.parties.models import ServiceAgreement
from meter2cash.cis.payments.allocation import apply_credit
from meter2cash.cis.payments.receipts import credit_receivable
from meter2cash.cis.prepaid.models import Wallet


def settle_balance(
    session: Session, sa: ServiceAgreement, to_mode: str, *, on: date, currency: str
) -> Decimal:
    """Move the account's balance of the other mode into ``to_mode`` (see the module); returns
    the amount moved (positive: credit; negative: debt; 0: nothing to move).

    One entry of kind ``migration`` moves it between 1100 and 2100. What it credits to 1100 is a
    numbered ``migration`` document allocated like a payment (it settles open items, the rest is
    credit); what it debits to 1100 is an open item, which credit on the account settles at once.
    So receivables' open items and credit still explain the ledger (see
    :mod:`meter2cash.cis.payments.allocation`)."""
    ensure_chart(session)
    acct = sa.account_id
    if to_mode == "prepaid":
        if session.scalar(select(Wallet.id).where(Wallet.service_agreement_id == sa.id)) is None:
            session.add(Wallet(service_agreement_id=sa.id, account_id=acct))
        moved = -account_balance(session, acct, RECEIVABLE)  # > 0 credit, < 0 debt
        source, target = RECEIVABLE, WALLET
    else:
        moved = -account_balance(session, acct, WALLET)  # > 0 credit, < 0 debt
        source, target = WALLET, RECEIVABLE
        wallet = session.scalars(select(Wallet).where(Wallet.service_agreement_id == sa.id)).first()
        if wallet is not None:
            wallet.alert_level, wallet.grace_until, wallet.emergency_credit = -1, None, Decimal(0)
    if moved == 0:
        session.flush()
        return Decimal(0)
    from_mode = "postpaid" if to_mode == "prepaid" else "prepaid"
    memo = f"{sa.number} {from_mode} → {to_mode}: balance moved"
    if moved > 0 if source == WALLET else moved < 0:  # the move credits receivables: a document
        credit_receivable(
            session, acct, abs(moved), purpose="migration", on=on, currency=currency, debit=(WALLET, acct),
            memo=memo, reference=sa.number, entry_reference=sa.number,
        )  # fmt: skip
    else:  # it debits receivables: an open item, which credit on the account settles at once
        post(
            session,
            kind="migration",
            effective_date=on,
            reference=sa.number,
            memo=memo,
            lines=[(source, moved, acct), (target, -moved, acct)],
            currency=currency,
        )
        session.flush()
        apply_credit(session, [acct])
    session.flush()
    return moved
