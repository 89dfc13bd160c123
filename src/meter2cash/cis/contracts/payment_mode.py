"""Changing an agreement's payment mode (postpaid ↔ prepaid) from a date, with the balance settled.

A mode change is a dated contract term (:func:`meter2cash.cis.contracts.changes.change_terms`):
the bill run bills only the postpaid days of a period and the prepaid engine charges only the
prepaid days, so no day is charged twice. Bills already issued for periods reaching the date were made
under the old mode and are cancelled and billed again. Then the old mode's balance moves into the
new one:

- postpaid → prepaid: a credit on 1100 moves into the wallet (Dr 1100, Cr 2100); a debt moves
  into the wallet as a negative balance (Dr 2100, Cr 1100) and the open items it settles are
  allocated, so the first recharge pays the old debt;
- prepaid → postpaid: a wallet credit becomes credit on receivables (Dr 2100, Cr 1100, unapplied
  and then applied to open items); a wallet debt becomes an open item (Dr 1100, Cr 2100, entry
  kind ``migration``). Prepaid days the engine had not yet charged before the date are charged by
  its next run, which settles what they leave in the wallet the same way
  (:func:`~meter2cash.cis.prepaid.settlement.settle_balance`).

The change takes effect at most today (it settles money now) and, to prepaid, from the first day
of the current month at the earliest (the prepaid engine charges the month to date); a change to
postpaid cannot start on a day the prepaid engine already charged. Takes a Session; never commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.billing.rebill import RebillResult
from meter2cash.cis.contracts.changes import (
    PAYMENT_MODES,
    TOPIC_MODE_CHANGED,
    LoadChange,
    agreement_by_number,
    change_terms,
    rebill_affected,
)
from meter2cash.cis.parties.models import ServiceAgreement
from meter2cash.cis.parties.supply import agreement_meters, issue_supply_commands
from meter2cash.cis.parties.terms import contract_terms, term_on
from meter2cash.cis.prepaid.models import Wallet
from meter2cash.cis.prepaid.settlement import settle_balance
from meter2cash.core.errors import Conflict, InvalidInput
from meter2cash.core.money import format_money
from meter2cash.core.timeutil import month_start, utcnow
from meter2cash.events.outbox import emit
from meter2cash.mdm.usage.port import UsageFactory


@dataclass(slots=True)
class ModeChange:
    """What :func:`change_payment_mode` did: the term, the bills rebilled, the balance moved
    (positive: a credit moved into the new mode; negative: a debt)."""

    change: LoadChange
    from_mode: str
    to_mode: str
    settled: Decimal
    rebill: RebillResult | None
    currency: str
    #: The ``payment_mode`` command that switches the meter itself (``None``: no meter installed).
    meter_command: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.change.to_dict(),
            "from_mode": self.from_mode,
            "to_mode": self.to_mode,
            "settled": format_money(self.settled, self.currency),
            "rebill": None if self.rebill is None else self.rebill.to_dict(),
            "meter_command": self.meter_command,
        }


def mode_on(session: Session, sa: ServiceAgreement, day: date) -> str:
    """The payment mode of the agreement in effect on ``day``."""
    terms = contract_terms(session, [sa.id], day).get(sa.id)
    return term_on(terms, day).payment_mode if terms else sa.payment_mode


def check_mode_change(
    session: Session, sa: ServiceAgreement, effective_from: date, to_mode: str, *, today: date
) -> str:
    """Whether the agreement may switch to ``to_mode`` from ``effective_from`` (the rules of
    :func:`change_payment_mode`); returns the mode in effect before, or raises."""
    if to_mode not in PAYMENT_MODES:
        raise InvalidInput(
            f"unknown payment mode {to_mode!r}; use {' or '.join(PAYMENT_MODES)}", code="contract.bad_mode"
        )
    from_mode = mode_on(session, sa, effective_from)
    if from_mode == to_mode:
        raise Conflict(
            f"agreement {sa.number} is already {to_mode} on {effective_from}",
            code="contract.unchanged", agreement=sa.number,
        )  # fmt: skip
    if effective_from > today:
        raise InvalidInput(
            f"a payment-mode change settles balances at once: it can take effect today ({today}) at the "
            f"latest, not {effective_from}",
            code="contract.mode_change_in_future", today=today.isoformat(),
        )  # fmt: skip
    if to_mode == "prepaid" and effective_from < month_start(today):
        raise InvalidInput(
            f"a change to prepaid can take effect from {month_start(today)} at the earliest (the prepaid "
            f"engine charges the month to date), not {effective_from}",
            code="contract.mode_change_too_early",
        )  # fmt: skip
    wallet = session.scalars(select(Wallet).where(Wallet.service_agreement_id == sa.id)).first()
    charged = None if wallet is None else wallet.last_charged_on
    if to_mode == "postpaid" and charged is not None and effective_from <= charged:
        raise Conflict(
            f"the prepaid engine charged agreement {sa.number} up to {charged}; a change "
            f"to postpaid can take effect from the day after at the earliest",
            code="contract.mode_change_charged", last_charged_on=charged.isoformat(),
        )  # fmt: skip
    return from_mode


def change_payment_mode(
    session: Session,
    agreement: str | ServiceAgreement,
    effective_from: date,
    to_mode: str,
    *,
    reason: str,
    by: str,
    today: date,
    tz: str,
    currency: str,
    usage: UsageFactory,
) -> ModeChange:
    """Switch the agreement to ``to_mode`` from ``effective_from`` on (``today``: the utility's
    local date): record the term, rebill the bills the date reaches, settle the balance.

    Refused: an unknown mode (``contract.bad_mode``), the mode already in effect
    (``contract.unchanged``), a date after today (``contract.mode_change_in_future``), to prepaid
    before the current month (``contract.mode_change_too_early``), to postpaid on or before the
    last day the prepaid engine charged (``contract.mode_change_charged``), and what
    :func:`~meter2cash.cis.contracts.changes.change_terms` refuses. Emits
    ``agreement.payment_mode_changed``.
    """
    sa = agreement if isinstance(agreement, ServiceAgreement) else agreement_by_number(session, agreement)
    from_mode = check_mode_change(session, sa, effective_from, to_mode, today=today)
    change = change_terms(session, sa, effective_from, {"payment_mode": to_mode}, reason=reason, by=by)
    rebilled = None
    if change.bills_affected:
        rebilled = rebill_affected(
            session, change, tz=tz, currency=currency, usage=usage, what="payment mode"
        )
    settled = settle_balance(session, sa, to_mode, on=effective_from, currency=currency)
    # the meter switches its own mode too (AMISP 13/14), by a command through the head-end
    now = utcnow()
    meter = agreement_meters(session, [sa.id], now).get(sa.id)
    command_id = None
    if meter is not None:
        (command_id,) = issue_supply_commands(
            session,
            [
                {
                    "service_agreement_id": sa.id,
                    "kind": "payment_mode",
                    "params": {"mode": to_mode},
                    "reason": "contract.payment_mode",
                }
            ],
            by=by,
            at=now,
        )
    emit(
        session,
        TOPIC_MODE_CHANGED,
        {
            "agreement": sa.number, "service_agreement_id": sa.id,
            "effective_from": effective_from.isoformat(), "from_mode": from_mode, "to_mode": to_mode,
            "settled": format_money(settled, currency), "reason": change.term.reason, "by": by,
            "bills_rebilled": change.bills_affected, "meter_command": command_id,
        },
        key=sa.number,
    )  # fmt: skip
    return ModeChange(change, from_mode, to_mode, settled, rebilled, currency, command_id)
