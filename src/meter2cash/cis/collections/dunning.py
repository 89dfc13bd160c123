"""Collections: dunning on debt age and amount, promises to pay, late-payment surcharge, write-off.

The dunning ladder is reminder → notice → disconnection request, each step waiting a configurable
number of days after the one before; it starts over once an account's overdue debt is paid. An open
promise to pay holds the ladder until its date; a broken promise lets it go on. Every function
takes a Session and flushes; none commits (``m2c collections run`` commits).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from meter2cash.cis.billing.models import Bill
from meter2cash.cis.collections.models import DunningStep, PromiseToPay
from meter2cash.cis.ledger.journal import RECEIVABLE, SURCHARGE, WRITE_OFF, EntrySpec, ensure_chart, post_many
from meter2cash.cis.parties.models import Account, Person, ServiceAgreement
from meter2cash.cis.parties.supply import issue_supply_commands
from meter2cash.cis.payments.allocation import apply_credit, open_items, unapplied_credit
from meter2cash.cis.payments.models import Payment
from meter2cash.cis.payments.receipts import check_amount, check_day, credit_receivable
from meter2cash.cis.prepaid.policy import PrepaidPolicy, disconnect_allowed
from meter2cash.cis.rating import payment_terms
from meter2cash.cis.rating.payment_terms import UTILITY_DEFAULT, Terms
from meter2cash.core.errors import InvalidInput
from meter2cash.core.money import format_money
from meter2cash.core.timeutil import check_date
from meter2cash.notify.models import Notification

LADDER = ("reminder", "notice", "disconnect")


@dataclass(frozen=True, slots=True)
class CollectionsPolicy:
    """Dunning rules. Days are calendar days; amounts in the account currency.

    ``reminder_after``: days past due before a reminder; ``notice_after`` / ``disconnect_after``:
    days after the previous step; ``min_debt``: smaller overdue debts are not dunned;
    ``payment_terms``: the utility's default payment terms, for a bill issued without a record
    of its own (the late-payment surcharge is levied from each bill's recorded terms, see
    :mod:`meter2cash.cis.rating.payment_terms`); ``surcharge``: False leaves surcharges out of the run.
    """

    reminder_after: int = 7
    notice_after: int = 15
    disconnect_after: int = 15
    min_debt: Decimal = Decimal("100")
    payment_terms: Terms = UTILITY_DEFAULT
    surcharge: bool = True
    window: PrepaidPolicy = field(default_factory=PrepaidPolicy)


@dataclass(slots=True)
class CollectionsResult:
    on: date
    steps: dict[str, int] = field(default_factory=lambda: {s: 0 for s in LADDER})
    held_by_promise: int = 0
    promises_broken: int = 0
    promises_kept: int = 0
    surcharges: int = 0
    surcharge_amount: Decimal = Decimal("0.00")
    disconnects_deferred: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "on": self.on.isoformat(),
            **self.steps,
            "held_by_promise": self.held_by_promise,
            "promises_broken": self.promises_broken,
            "promises_kept": self.promises_kept,
            "surcharges": self.surcharges,
            "surcharge_amount": str(self.surcharge_amount),
            "disconnects_deferred": self.disconnects_deferred,
        }


def promise_to_pay(
    session: Session, account_id: int, amount: Decimal, due_on: date, currency: str
) -> PromiseToPay:
    """Record a promise to pay ``amount`` by ``due_on``; dunning of the account waits until then."""
    check_amount(amount, currency)
    check_date(due_on, "due_on", code="collections.bad_date")
    p = PromiseToPay(account_id=account_id, amount=amount, due_on=due_on)
    session.add(p)
    session.flush()
    return p


def write_off(
    session: Session, account_id: int, amount: Decimal, *, on: date, currency: str, reason: str
) -> Payment:
    """Write off bad debt: Dr 6100, Cr 1100, settling the oldest open items (an ``adjustment`` document)."""
    check_amount(amount, currency)
    check_day(on, "on")
    owed = sum((i.open for i in open_items(session, [account_id])), Decimal(0))
    if amount > owed:
        raise InvalidInput(
            f"write-off {amount} exceeds the open debt {owed}", code="collections.write_off_exceeds_debt"
        )
    ensure_chart(session)
    doc = credit_receivable(
        session, account_id, amount, purpose="write_off", on=on, currency=currency, debit=(WRITE_OFF, None),
        memo=f"bad debt written off: {reason}"[:200], reference=reason,
    )  # fmt: skip
    return doc


def _promises(session: Session, on: date, result: CollectionsResult) -> set[int]:
    """Settle open promises (kept when receipts since it reach the amount; broken after its date);
    returns the accounts still held by an open promise."""
    held = set()
    for p in session.scalars(select(PromiseToPay).where(PromiseToPay.status == "open")):
        paid = session.scalar(
            select(func.sum(Payment.amount)).where(
                Payment.account_id == p.account_id,
                Payment.purpose == "payment",
                Payment.status == "posted",
                Payment.received_at >= p.created_at,
            )
        ) or Decimal(0)
        if paid >= p.amount:
            p.status = "kept"
            result.promises_kept += 1
        elif p.due_on < on:
            p.status = "broken"
            result.promises_broken += 1
        else:
            held.add(p.account_id)
    return held


def run_collections(
    session: Session,
    on: date,
    *,
    currency: str,
    tz: str,
    policy: CollectionsPolicy | None = None,
    at: datetime | None = None,
) -> CollectionsResult:
    """One collections run for day ``on``: unapplied credit settles open items first (so an
    account whose credit covers its bills owes nothing), then late-payment surcharges, then one
    dunning step per account at most."""
    pol = policy or CollectionsPolicy()
    ensure_chart(session)
    result = CollectionsResult(on)
    apply_credit(session)
    held = _promises(session, on, result)
    items = [i for i in open_items(session) if i.due_on < on]
    if pol.surcharge and items:
        _surcharge(session, on, items, pol, currency, result)
        items = [i for i in open_items(session) if i.due_on < on]
    credit = unapplied_credit(session)
    overdue: dict[int, list[Any]] = defaultdict(list)
    for i in items:
        overdue[i.account_id].append(i)
    last: dict[int, tuple[str, date]] = {}
    for acct, kind, taken in session.execute(
        select(DunningStep.account_id, DunningStep.step, DunningStep.taken_on)
        .where(DunningStep.step.in_(LADDER))
        .order_by(DunningStep.taken_on, DunningStep.id)
    ):
        last[acct] = (kind, taken)
    contacts = {
        a: (email, phone)
        for a, email, phone in session.execute(
            select(Account.id, Person.email, Person.phone).join(Person, Person.id == Account.person_id)
        )
    }
    at_moment = at or datetime.now().astimezone()
    allowed = bool(disconnect_allowed([int(at_moment.timestamp())], tz, pol.window))
    steps, notes, commands = [], [], []
    step: str | None
    for acct, its in overdue.items():
        debt = sum((i.open for i in its), Decimal(0)) - credit.get(acct, Decimal(0))
        oldest = min(i.due_on for i in its)
        if debt < pol.min_debt:
            continue
        if acct in held:
            result.held_by_promise += 1
            continue
        prev = last.get(acct)
        if prev is not None and prev[1] < oldest:
            prev = None  # the ladder starts over for debt that fell due after the last step
        if prev is None:
            step = "reminder" if (on - oldest).days >= pol.reminder_after else None
        elif prev[0] == "reminder":
            step = "notice" if (on - prev[1]).days >= pol.notice_after else None
        elif prev[0] == "notice":
            step = "disconnect" if (on - prev[1]).days >= pol.disconnect_after else None
        else:
            step = None
        if step is None:
            continue
        if step == "disconnect":
            if not allowed:
                result.disconnects_deferred += 1
                continue
            for sa_id in session.scalars(
                select(ServiceAgreement.id).where(
                    ServiceAgreement.account_id == acct,
                    ServiceAgreement.payment_mode == "postpaid",
                    ServiceAgreement.status == "active",
                )
            ):
                commands.append(
                    {
                        "service_agreement_id": sa_id,
                        "kind": "disconnect",
                        "reason": "collections.non_payment",
                    }
                )
        result.steps[step] += 1
        steps.append(
            {"account_id": acct, "step": step, "taken_on": on, "debt": debt, "oldest_due": oldest, "data": {}}
        )
        email, phone = contacts.get(acct, ("", ""))
        notes.append(
            {
                "account_id": acct,
                "channel": "email" if email else "sms",
                "recipient": email or phone or "",
                "template": f"dunning_{step}",
                "context": {"debt": format_money(debt, currency), "oldest_due": oldest.isoformat()},
                "status": "pending" if (email or phone) else "failed",
                "error": "" if (email or phone) else "no contact",
            }
        )
    for table, rows in ((DunningStep, steps), (Notification, notes)):
        if rows:
            session.execute(insert(table), rows)
    if commands:
        issue_supply_commands(session, commands, by="collections", at=at_moment)
    session.flush()
    return result


def _surcharge(
    session: Session,
    on: date,
    items: list[Any],
    pol: CollectionsPolicy,
    currency: str,
    result: CollectionsResult,
) -> None:
    """Late-payment surcharges due by ``on`` on overdue bills, from each bill's recorded payment
    terms: one a month while the bill stays open (:func:`payment_terms.surcharge_dates`), each a
    new open item of kind ``surcharge`` on what is open on the bill. A month already levied is
    not levied again (``DunningStep`` ``surcharge`` rows name the item and the month)."""
    bills = [i for i in items if i.kind == "bill"]
    if not bills:
        return
    done = {
        (int(d["item"]), str(d.get("month", "")))
        for (d,) in session.execute(select(DunningStep.data).where(DunningStep.step == "surcharge"))
        if d and "item" in d
    }
    recorded: dict[int, tuple[dict[str, Any] | None, str]] = {}
    ids = sorted({i.bill_id for i in bills if i.bill_id is not None})
    for k in range(0, len(ids), 500):
        for bid, det, cur in session.execute(
            select(Bill.id, Bill.determinants, Bill.currency).where(Bill.id.in_(ids[k : k + 500]))
        ):
            recorded[bid] = ((det or {}).get("terms"), cur or currency)
    specs, steps = [], []
    for i in bills:
        det_terms, cur = recorded.get(i.bill_id or 0, (None, currency))
        terms = payment_terms.recorded(det_terms, pol.payment_terms)
        if not terms.has_surcharge:
            continue
        due_days = payment_terms.surcharge_dates(i.due_on, terms.late_grace_days, on)
        todo = [
            d for d in due_days if (i.entry_id, d.isoformat()) not in done and (i.entry_id, "") not in done
        ]
        if not todo:
            continue
        # Months missed by earlier runs are levied now, each on what is open today.
        amount = payment_terms.surcharge_amount(i.open, terms.late_percent, cur) * len(todo)
        if amount <= 0:
            continue
        months = ", ".join(f"{d:%Y-%m-%d}" for d in todo)
        specs.append(
            EntrySpec(
                "surcharge",
                on,
                f"LPS-{i.reference}-{todo[-1]:%Y%m%d}"[:64],
                f"late-payment surcharge {terms.late_percent.normalize():f} % on {i.reference} ({months})"[
                    :200
                ],
                [(RECEIVABLE, amount, i.account_id), (SURCHARGE, -amount, None)],
                cur,
            )
        )
        steps += [
            {
                "account_id": i.account_id,
                "step": "surcharge",
                "taken_on": on,
                "debt": amount / len(todo),
                "oldest_due": i.due_on,
                "data": {"item": i.entry_id, "month": d.isoformat(), "percent": f"{terms.late_percent:f}"},
            }
            for d in todo
        ]
        result.surcharges += 1
        result.surcharge_amount += amount
    if specs:
        post_many(session, specs)
        session.execute(insert(DunningStep), steps)
