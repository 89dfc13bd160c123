"""Contract terms of a service agreement: sanctioned load [kW] and contract demand [kVA] from a
date on (a load change). The bill run splits a period at each term's date (see
:func:`meter2cash.cis.cycles.plan_jobs`), so charges per kW or kVA prorate by the days under
each term. The agreement's own columns hold the latest term, also one dated in the future; what
applies on a day is the term in effect then (the bill run and the prepaid engine read the terms,
:func:`meter2cash.cis.cycles.contract_terms`).

Functions take a Session and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.cycles import add_months
from meter2cash.cis.models import Bill, ContractTerm, ServiceAgreement
from meter2cash.core.errors import Conflict, InvalidInput, NotFound
from meter2cash.integration.outbox import emit

if TYPE_CHECKING:
    from meter2cash.cis.rebill import RebillResult

TOPIC_LOAD_CHANGED = "agreement.load_changed"
#: Quantities are stored with 3 decimals; more are refused, never rounded.
PLACES = 3
INITIAL_REASON = "contract at the start of the agreement"


@dataclass(frozen=True, slots=True)
class TermView:
    """A contract term as shown (CLI, API)."""

    effective_from: date
    sanctioned_kw: Decimal
    contract_kva: Decimal | None
    reason: str
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "effective_from": self.effective_from.isoformat(),
            "sanctioned_kw": _s(self.sanctioned_kw),
            "contract_kva": _s(self.contract_kva),
            "reason": self.reason,
            "created_by": self.created_by,
        }


@dataclass(slots=True)
class LoadChange:
    """What :func:`change_load` did: the new term, whether it is now the agreement's current
    contract, and the issued bills of periods reaching the term's date (to rebill by hand)."""

    agreement: str
    term: TermView
    current: bool
    bills_affected: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "agreement": self.agreement,
            "term": self.term.to_dict(),
            "current": self.current,
            "bills_affected": self.bills_affected,
        }


def agreement_by_number(session: Session, number: str) -> ServiceAgreement:
    sa = session.scalar(select(ServiceAgreement).where(ServiceAgreement.number == number))
    if sa is None:
        raise NotFound(f"no service agreement {number!r}", code="service_agreement.not_found", key=number)
    return sa


def load_value(value: Any, name: str, *, required: bool = True) -> Decimal | None:
    """A load in kW or kVA: a positive decimal with at most 3 places (``contract.invalid_load``).
    Floats are refused: they are inexact."""
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{name} is required", code="contract.invalid_load", field=name)
        return None
    if isinstance(value, float | bool):
        raise InvalidInput(f"{name} must be a decimal string, not {value!r}", code="contract.invalid_load",
                           field=name)  # fmt: skip
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise InvalidInput(
            f"{name} is not a decimal: {value!r}", code="contract.invalid_load", field=name
        ) from None
    exp = d.as_tuple().exponent
    if not d.is_finite() or d <= 0 or (isinstance(exp, int) and exp < -PLACES):
        raise InvalidInput(
            f"{name} must be a positive decimal with at most {PLACES} places, not {value}",
            code="contract.invalid_load",
            field=name,
        )
    return d


def terms_of(session: Session, sa: ServiceAgreement) -> list[TermView]:
    """The agreement's contract terms, oldest first (empty: the agreement's columns apply)."""
    rows = session.scalars(
        select(ContractTerm)
        .where(ContractTerm.service_agreement_id == sa.id)
        .order_by(ContractTerm.effective_from)
    )
    return [_view(t) for t in rows]


def change_load(
    session: Session,
    agreement: str | ServiceAgreement,
    effective_from: date,
    sanctioned_kw: Any,
    contract_kva: Any = None,
    *,
    reason: str,
    by: str,
) -> LoadChange:
    """Record a change of sanctioned load (and contract demand) from ``effective_from`` on.

    Refused: a load that is not a positive decimal (``contract.invalid_load``), a date before
    the agreement's start or after its end (``contract.before_start``, ``contract.after_end``),
    a second term on the same date (``contract.duplicate_term``), an empty reason
    (``contract.missing_reason``). The first change of an agreement also records the contract
    it had until then as a term from its start date, so earlier days keep their load. When the
    new term is the latest, the agreement's columns take its values, even before its date (the
    days before it are still charged under the earlier term). Emits
    ``agreement.load_changed``. Without ``contract_kva`` the contract demand in effect on that
    date carries over.
    """
    sa = agreement if isinstance(agreement, ServiceAgreement) else agreement_by_number(session, agreement)
    kw = load_value(sanctioned_kw, "sanctioned_kw")
    assert kw is not None
    kva = load_value(contract_kva, "contract_kva", required=False)
    if not reason or not reason.strip():
        raise InvalidInput("a load change needs a reason", code="contract.missing_reason")
    if effective_from < sa.start_date:
        raise InvalidInput(
            f"{effective_from} is before the start of agreement {sa.number} ({sa.start_date})",
            code="contract.before_start", agreement=sa.number, start_date=sa.start_date.isoformat(),
        )  # fmt: skip
    if sa.end_date is not None and effective_from > sa.end_date:
        raise InvalidInput(
            f"{effective_from} is after the end of agreement {sa.number} ({sa.end_date})",
            code="contract.after_end", agreement=sa.number, end_date=sa.end_date.isoformat(),
        )  # fmt: skip
    terms = list(
        session.scalars(
            select(ContractTerm)
            .where(ContractTerm.service_agreement_id == sa.id)
            .order_by(ContractTerm.effective_from)
        )
    )
    if any(t.effective_from == effective_from for t in terms):
        raise Conflict(
            f"agreement {sa.number} already has a term from {effective_from}",
            code="contract.duplicate_term", agreement=sa.number, effective_from=effective_from.isoformat(),
        )  # fmt: skip
    if not terms and effective_from > sa.start_date:
        initial = ContractTerm(
            service_agreement_id=sa.id,
            effective_from=sa.start_date,
            sanctioned_load_kw=sa.sanctioned_load_kw,
            contract_demand_kva=sa.contract_demand_kva,
            payment_mode=sa.payment_mode,
            tariff_code=sa.tariff_code,
            reason=INITIAL_REASON,
            created_by=by,
        )
        session.add(initial)
        terms.append(initial)
    before = [t for t in terms if t.effective_from < effective_from]
    previous = before[-1] if before else None
    if kva is None and previous is not None:
        kva = previous.contract_demand_kva
    elif kva is None and previous is None:
        kva = sa.contract_demand_kva
    term = ContractTerm(
        service_agreement_id=sa.id,
        effective_from=effective_from,
        sanctioned_load_kw=kw,
        contract_demand_kva=kva,
        payment_mode=previous.payment_mode if previous is not None else sa.payment_mode,
        tariff_code=previous.tariff_code if previous is not None else sa.tariff_code,
        reason=reason.strip(),
        created_by=by,
    )
    session.add(term)
    current = all(t.effective_from < effective_from for t in terms)
    old_kw, old_kva = (
        (previous.sanctioned_load_kw, previous.contract_demand_kva)
        if previous is not None
        else (sa.sanctioned_load_kw, sa.contract_demand_kva)
    )
    if current:
        sa.sanctioned_load_kw, sa.contract_demand_kva = kw, kva
    session.flush()
    affected = bills_reaching(session, sa.id, effective_from)
    emit(
        session,
        TOPIC_LOAD_CHANGED,
        {
            "agreement": sa.number, "service_agreement_id": sa.id,
            "effective_from": effective_from.isoformat(),
            "sanctioned_kw": _s(kw), "contract_kva": _s(kva),
            "previous_sanctioned_kw": _s(old_kw), "previous_contract_kva": _s(old_kva),
            "current": current, "reason": term.reason, "by": by, "bills_affected": affected,
        },
        key=sa.number,
    )  # fmt: skip
    return LoadChange(sa.number, _view(term), current, affected)


def bills_reaching(session: Session, sa_id: int, day: date) -> list[str]:
    """Numbers of the agreement's issued bills (and statements) whose period ends after ``day``:
    rated under the contract before the change, to rebill by hand if the change is backdated."""
    month = f"{day:%Y-%m}"
    out = []
    for number, period, start, end in session.execute(
        select(Bill.number, Bill.period, Bill.period_start, Bill.period_end)
        .where(Bill.service_agreement_id == sa_id, Bill.status.in_(("issued", "statement")))
        .order_by(Bill.number)
    ):
        months = 2 if (end - start).days > 32 else 1
        if add_months(period, months - 1) >= month:
            out.append(number)
    return out


def rebill_affected(session: Session, change: LoadChange, *, tz: str, currency: str) -> RebillResult:
    """Cancel the bills a backdated load change reaches (journal entries reversed) and bill
    their periods again under the terms now recorded; each new bill names the one it replaces
    and carries the adjustment line (see :mod:`meter2cash.cis.rebill`)."""
    from meter2cash.cis.rebill import StaleBill, rebill

    reason = f"load changed from {change.term.effective_from}"
    stale = [
        StaleBill(bill_id, number, period, reason)
        for bill_id, number, period in session.execute(
            select(Bill.id, Bill.number, Bill.period).where(Bill.number.in_(change.bills_affected))
        )
    ]
    return rebill(session, stale, tz=tz, currency=currency)


def _s(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def _view(t: ContractTerm) -> TermView:
    return TermView(t.effective_from, t.sanctioned_load_kw, t.contract_demand_kva, t.reason, t.created_by)
