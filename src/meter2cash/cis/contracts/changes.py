"""Contract terms of a service agreement from a date on: sanctioned load [kW], contract demand
[kVA], payment mode and tariff. A change is a dated term (a load change, a tariff change, a
payment-mode change), never a silent flip of the agreement's columns. The bill run splits a period
at each term's date (see :func:`meter2cash.cis.billing.planning.plan_jobs`): charges per kW or kVA prorate by
the days under each term, each part is rated on the tariff in effect, and only postpaid days are
billed; the prepaid engine charges only prepaid days. The agreement's own columns hold the latest
term, also one dated in the future (a payment-mode change cannot be: it settles balances at once,
see :mod:`meter2cash.cis.contracts.payment_mode`).

Functions take a Session and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.audit.models import AuditEntry
from meter2cash.cis.billing.models import Bill
from meter2cash.cis.parties.models import ContractTerm, ServiceAgreement
from meter2cash.cis.tariffs.models import TariffVersion
from meter2cash.core.errors import Conflict, InvalidInput, NotFound
from meter2cash.core.timeutil import add_months, check_date, month_code
from meter2cash.events.outbox import emit

if TYPE_CHECKING:
    from meter2cash.cis.billing.rebill import RebillResult
    from meter2cash.mdm.usage.port import UsageFactory

TOPIC_LOAD_CHANGED = "agreement.load_changed"
TOPIC_TARIFF_CHANGED = "agreement.tariff_changed"
TOPIC_MODE_CHANGED = "agreement.payment_mode_changed"
#: Quantities are stored with 3 decimals; more are refused, never rounded.
PLACES = 3
#: The largest sanctioned load or contract demand accepted [kW, kVA].
MAX_LOAD = Decimal(1_000_000)
INITIAL_REASON = "contract at the start of the agreement"
PAYMENT_MODES = ("prepaid", "postpaid")


@dataclass(frozen=True, slots=True)
class TermView:
    """A contract term as shown (CLI, API)."""

    effective_from: date
    sanctioned_kw: Decimal
    contract_kva: Decimal | None
    reason: str
    created_by: str
    payment_mode: str = "postpaid"
    tariff_code: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "effective_from": self.effective_from.isoformat(),
            "sanctioned_kw": _s(self.sanctioned_kw),
            "contract_kva": _s(self.contract_kva),
            "payment_mode": self.payment_mode,
            "tariff_code": self.tariff_code,
            "reason": self.reason,
            "created_by": self.created_by,
        }


@dataclass(slots=True)
class LoadChange:
    """What a change of terms did: the new term, whether it is now the agreement's current
    contract, and the issued bills of periods reaching the term's date (to rebill)."""

    agreement: str
    term: TermView
    current: bool
    bills_affected: list[str]
    #: The fields the change set, with the values before it.
    previous: dict[str, Any] = field(default_factory=dict)

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
    if not d.is_finite() or d <= 0 or d > MAX_LOAD or (isinstance(exp, int) and exp < -PLACES):
        raise InvalidInput(
            f"{name} must be a positive decimal up to {MAX_LOAD} with at most {PLACES} places, not {value}",
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

    Refused: a load that is not a positive decimal (``contract.invalid_load``), a second load
    change on the same date (``contract.duplicate_term``), and what :func:`change_terms`
    refuses. Without ``contract_kva`` the contract demand in effect on that date carries over.
    Emits ``agreement.load_changed``.
    """
    sa = agreement if isinstance(agreement, ServiceAgreement) else agreement_by_number(session, agreement)
    kw = load_value(sanctioned_kw, "sanctioned_kw")
    kva = load_value(contract_kva, "contract_kva", required=False)
    changes: dict[str, Any] = {"sanctioned_load_kw": kw}
    if kva is not None:
        changes["contract_demand_kva"] = kva
    change = change_terms(session, sa, effective_from, changes, reason=reason, by=by)
    t = change.term
    emit(
        session,
        TOPIC_LOAD_CHANGED,
        {
            "agreement": sa.number, "service_agreement_id": sa.id,
            "effective_from": effective_from.isoformat(),
            "sanctioned_kw": _s(t.sanctioned_kw), "contract_kva": _s(t.contract_kva),
            "previous_sanctioned_kw": _s(change.previous["sanctioned_load_kw"]),
            "previous_contract_kva": _s(change.previous["contract_demand_kva"]),
            "current": change.current, "reason": t.reason, "by": by, "bills_affected": change.bills_affected,
        },
        key=sa.number,
    )  # fmt: skip
    return change


def change_tariff(
    session: Session,
    agreement: str | ServiceAgreement,
    effective_from: date,
    tariff_code: str,
    *,
    reason: str,
    by: str,
) -> LoadChange:
    """Put the agreement on tariff ``tariff_code`` from ``effective_from`` on (a dated term;
    also in the future). The tariff must be loaded (``contract.unknown_tariff``); the same
    tariff as in effect is refused (``contract.unchanged``). Bills of periods reaching the
    date are named (``bills_affected``) to rebill. Emits ``agreement.tariff_changed``."""
    sa = agreement if isinstance(agreement, ServiceAgreement) else agreement_by_number(session, agreement)
    code = (tariff_code or "").strip()
    if (
        not code
        or session.scalar(select(TariffVersion.id).where(TariffVersion.code == code).limit(1)) is None
    ):
        raise InvalidInput(
            f"no tariff {tariff_code!r} is loaded", code="contract.unknown_tariff", tariff_code=tariff_code
        )
    change = change_terms(session, sa, effective_from, {"tariff_code": code}, reason=reason, by=by)
    emit(
        session,
        TOPIC_TARIFF_CHANGED,
        {
            "agreement": sa.number, "service_agreement_id": sa.id,
            "effective_from": effective_from.isoformat(), "tariff_code": code,
            "previous_tariff_code": change.previous["tariff_code"], "current": change.current,
            "reason": change.term.reason, "by": by, "bills_affected": change.bills_affected,
        },
        key=sa.number,
    )  # fmt: skip
    return change


#: The columns of a contract term that a change sets, and of the agreement that mirror the latest.
TERM_FIELDS = ("sanctioned_load_kw", "contract_demand_kva", "payment_mode", "tariff_code")
#: Fields whose new value also applies to later terms that still carried the old one (a later
#: load change keeps its load; a tariff or payment mode holds until the next change of it).
CARRIED = ("payment_mode", "tariff_code")


def change_terms(
    session: Session,
    sa: ServiceAgreement,
    effective_from: date,
    changes: dict[str, Any],
    *,
    reason: str,
    by: str,
) -> LoadChange:
    """Record a dated change of the agreement's terms: ``changes`` maps fields of
    :data:`TERM_FIELDS` to their new values from ``effective_from`` on.

    The first change of an agreement also records the contract it had until then as a term
    from its start date, so earlier days keep their terms. The new term copies the term in
    effect on its date and sets ``changes``; a payment mode or tariff also applies to later
    terms until one of them changes it. When the new term is the latest, the agreement's
    columns take its values (even before its date: the days before are still charged under the
    earlier term). Refused: a date outside the agreement (``contract.before_start``,
    ``contract.after_end``) or the platform's window, an empty reason
    (``contract.missing_reason``), a change that changes nothing (``contract.unchanged``), a
    load change on a date that already has a term (``contract.duplicate_term``); a tariff or
    payment mode the same as in effect (``contract.unchanged``).
    """
    check_date(effective_from, "effective_from", code="contract.invalid_date")
    if not reason or not reason.strip():
        raise InvalidInput("a change of contract terms needs a reason", code="contract.missing_reason")
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
    if not terms or terms[0].effective_from > sa.start_date:
        initial = ContractTerm(
            service_agreement_id=sa.id, effective_from=sa.start_date, reason=INITIAL_REASON, created_by=by,
            **{f: getattr(sa, f) for f in TERM_FIELDS},
        )  # fmt: skip
        session.add(initial)
        terms.insert(0, initial)
    before = [t for t in terms if t.effective_from <= effective_from]
    in_effect = before[-1]
    previous = {f: getattr(in_effect, f) for f in TERM_FIELDS}
    is_load = any(f in changes for f in ("sanctioned_load_kw", "contract_demand_kva"))
    if not is_load and all(previous[f] == v for f, v in changes.items()):
        raise Conflict(
            f"agreement {sa.number} already has these terms on {effective_from}",
            code="contract.unchanged", agreement=sa.number, effective_from=effective_from.isoformat(),
        )  # fmt: skip
    same_day = in_effect.effective_from == effective_from
    if same_day and is_load and in_effect.reason != INITIAL_REASON:
        raise Conflict(
            f"agreement {sa.number} already has a term from {effective_from}",
            code="contract.duplicate_term", agreement=sa.number, effective_from=effective_from.isoformat(),
        )  # fmt: skip
    if same_day and in_effect.reason == INITIAL_REASON and is_load:
        # a load change from the start date restates the initial contract
        term = in_effect
        term.reason, term.created_by = reason.strip(), by
    elif same_day:
        term = in_effect
        term.reason = f"{term.reason}; {reason.strip()}"[:2000]
    else:
        term = ContractTerm(
            service_agreement_id=sa.id, effective_from=effective_from, reason=reason.strip(), created_by=by,
            **previous,
        )  # fmt: skip
        session.add(term)
        terms.insert(terms.index(in_effect) + 1, term)
    for f, v in changes.items():
        setattr(term, f, v)
    for f in CARRIED:
        if f in changes:
            for later in terms[terms.index(term) + 1 :]:
                if getattr(later, f) != previous[f]:
                    break
                setattr(later, f, changes[f])
    latest = terms[-1]
    current = latest is term
    for f in TERM_FIELDS:
        setattr(sa, f, getattr(latest, f))
    session.add(
        AuditEntry(
            actor=by[:100], action="contract.change_terms", entity="service_agreement", entity_id=sa.number,
            before={"effective_from": effective_from.isoformat(), **{f: _json(previous[f]) for f in changes}},
            after={"effective_from": effective_from.isoformat(), "reason": term.reason,
                   **{f: _json(v) for f, v in changes.items()}},
        )
    )  # fmt: skip
    session.flush()
    return LoadChange(
        sa.number, _view(term), current, bills_reaching(session, sa.id, effective_from), previous
    )


def bills_reaching(session: Session, sa_id: int, day: date) -> list[str]:
    """Numbers of the agreement's issued bills (and statements) whose period ends after ``day``:
    rated under the contract before the change, to rebill by hand if the change is backdated."""
    month = month_code(day)
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


def rebill_affected(
    session: Session, change: LoadChange, *, tz: str, currency: str, usage: UsageFactory, what: str = "load"
) -> RebillResult:
    """Cancel the bills a backdated change of terms reaches (journal entries reversed,
    payments released) and bill their periods again under the terms now recorded; each new bill
    names the one it replaces, and the payments move to it (see :mod:`meter2cash.cis.billing.rebill`)."""
    reason = f"{what} changed from {change.term.effective_from}"
    return rebill_numbers(session, change.bills_affected, reason, tz=tz, currency=currency, usage=usage)


def rebill_numbers(
    session: Session, numbers: list[str], reason: str, *, tz: str, currency: str, usage: UsageFactory
) -> RebillResult:
    """Cancel and rebill the bills ``numbers`` for ``reason`` (see :func:`rebill_affected`)."""
    from meter2cash.cis.billing.rebill import StaleBill, rebill

    stale = [
        StaleBill(bill_id, number, period, reason)
        for bill_id, number, period in session.execute(
            select(Bill.id, Bill.number, Bill.period).where(Bill.number.in_(numbers))
        )
    ]
    return rebill(session, stale, tz=tz, currency=currency, usage=usage)


def _json(value: Any) -> Any:
    return _s(value) if isinstance(value, Decimal) else value


def _s(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def _view(t: ContractTerm) -> TermView:
    return TermView(
        t.effective_from, t.sanctioned_load_kw, t.contract_demand_kva, t.reason, t.created_by,
        t.payment_mode, t.tariff_code,
    )  # fmt: skip
