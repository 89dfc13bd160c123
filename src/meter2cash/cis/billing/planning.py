"""Planning a bill run: the agreements of a cycle, their segments by contract terms and tariff
versions, and what earlier bills carry in (ratchet demand, net-metering bank).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Select,
    and_,
    or_,
    select,
)
from sqlalchemy.orm import Session

from meter2cash.cis.billing.models import Bill, BillCycleAssignment
from meter2cash.cis.billing.periods import MONTHLY, BillingPeriod
from meter2cash.cis.parties.models import Account, Person, Premise, ServiceAgreement, ServicePoint
from meter2cash.cis.parties.terms import Term, contract_terms, term_on
from meter2cash.cis.tariffs.definitions import TariffVersionDef
from meter2cash.cis.tariffs.loader import stored_version
from meter2cash.cis.tariffs.models import TariffVersion
from meter2cash.core.timeutil import ONE_DAY, add_months
from meter2cash.db import Quantity
from meter2cash.db_query import CHUNK, ScaledValues, id_filters, raw


@dataclass(slots=True)
class History:
    """From an agreement's earlier bills: highest maximum demand of the ratchet months [kW]
    and the net-metering bank carried in [kWh]."""

    ratchet_kw: dict[int, float] = field(default_factory=dict)
    bank_kwh: dict[int, float] = field(default_factory=dict)


def bill_history(session: Session, sa_ids: list[int], period: str, ratchet_months: int) -> History:
    """Read the ratchet demand and the bank from the agreements' bills before ``period``
    (cancelled bills are ignored; the latest bill's bank is carried in; a split bill counts the
    highest demand of its segments and the bank all of them left)."""
    h = History()
    back = max(ratchet_months, 12)
    since = add_months(period, -back)
    latest: dict[int, str] = {}
    for i in range(0, len(sa_ids), CHUNK):
        rows = session.execute(
            select(Bill.service_agreement_id, Bill.period, Bill.determinants).where(
                Bill.service_agreement_id.in_(sa_ids[i : i + CHUNK]),
                Bill.period < period,
                Bill.period >= since,
                Bill.status != "cancelled",
                Bill.status != "shadow",
            )
        )
        for sa, p, det in rows:
            det = det or {}
            # A split bill: the highest demand of its segments, the bank left by all of them.
            parts = det.get("segments") or [det]
            if ratchet_months and p >= add_months(period, -ratchet_months):
                md = max(float(d.get("max_demand_kw") or 0) for d in parts)
                h.ratchet_kw[sa] = max(h.ratchet_kw.get(sa, 0.0), md)
            if any("banked_kwh" in d for d in parts) and p > latest.get(sa, ""):
                latest[sa] = p
                h.bank_kwh[sa] = sum(float(d.get("banked_kwh") or 0) for d in parts)
    return h


@dataclass(slots=True)
class Agreement:
    id: int
    number: str
    account_id: int
    service_point_id: int
    tariff_code: str
    kind: str
    sanctioned_kw: Decimal
    contract_kva: Decimal | None
    start: date
    end: date | None
    customer_class: str
    #: The customer and supply as the bill records them when issued (name, account, address,
    #: service point, agreement): see ``Bill.issued_to``.
    party: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Job:
    """One agreement × one segment of the period: one tariff version, one contract term.

    ``sanctioned_kw``/``contract_kva`` are the contract in effect over the segment (the
    agreement's own columns when it has no :class:`ContractTerm`); ``split``: the bill has more
    than one segment. The usage of the segment's days comes from the usage port, which reads
    the meters installed at the service point then."""

    a: Agreement
    seg: int
    first: date
    last: date
    tv_id: int
    sanctioned_kw: Decimal = Decimal(0)
    contract_kva: Decimal | None = None
    split: bool = False
    termed: bool = False


def error(a: Agreement, code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "service_agreement": a.number, "service_agreement_id": a.id}


def select_agreements(
    session: Session, p: BillingPeriod, cycle: str = MONTHLY, agreement_ids: list[int] | None = None
) -> list[Agreement]:
    """Agreements active in the period (in the cycle, or the given ids), by id. The cycle's
    agreements come from one query: those assigned to the cycle, or for ``monthly`` those
    assigned to no other cycle."""
    sa, acc, asg = ServiceAgreement.__table__.c, Account.__table__.c, BillCycleAssignment.__table__.c
    per, sp, pr = Person.__table__.c, ServicePoint.__table__.c, Premise.__table__.c
    stmt = (
        select(
            sa.id,
            sa.number,
            sa.account_id,
            sa.service_point_id,
            sa.tariff_code,
            sa.payment_mode,
            raw(sa.sanctioned_load_kw),
            raw(sa.contract_demand_kva),
            sa.start_date,
            sa.end_date,
            acc.customer_class,
            acc.number,
            per.name,
            sp.code,
            pr.address,
            pr.city,
            pr.postcode,
        )
        .join_from(ServiceAgreement.__table__, Account.__table__, acc.id == sa.account_id)
        .join(Person.__table__, per.id == acc.person_id)
        .join(ServicePoint.__table__, sp.id == sa.service_point_id)
        .join(Premise.__table__, pr.id == sp.premise_id)
        .where(sa.start_date <= p.last, or_(sa.end_date.is_(None), sa.end_date >= p.first))
        .order_by(sa.id)
    )
    queries: list[Select[Any]]
    if agreement_ids is not None:
        queries = [stmt.where(w) for w in id_filters(session, sa.id, sorted(set(agreement_ids)))]
    elif cycle == MONTHLY:
        stmt = stmt.outerjoin(BillCycleAssignment.__table__, asg.service_agreement_id == sa.id)
        queries = [stmt.where(or_(asg.cycle_code.is_(None), asg.cycle_code == MONTHLY))]
    else:
        on = and_(asg.service_agreement_id == sa.id, asg.cycle_code == cycle)
        queries = [stmt.join(BillCycleAssignment.__table__, on)]
    qty = ScaledValues(Quantity.scale)
    return [
        Agreement(
            i, num, acc_id, sp_id, code, kind, qty[kw], None if kva is None else qty[kva], first, last, cls,
            party={"name": name, "account": acc_num, "customer_class": cls, "address": address, "city": city,
                   "postcode": postcode, "service_point": sp_code, "agreement": num},
        )
        for q in queries
        for (i, num, acc_id, sp_id, code, kind, kw, kva, first, last, cls, acc_num, name, sp_code, address,
             city, postcode) in session.execute(q).all()
    ]  # fmt: skip


def plan_jobs(
    session: Session,
    agreements: list[Agreement],
    p: BillingPeriod,
    errors: list[dict[str, Any]],
    versions: dict[int, TariffVersionDef],
    override: tuple[int, TariffVersionDef] | None = None,
) -> list[Job]:
    """Split each agreement's active days into segments: by its contract terms (a change of
    sanctioned load, contract demand, tariff or payment mode starts a segment on its date) and
    by the versions of the tariff in effect (``override``: one given version for the whole
    period, for shadow billing). Only the days of the bill's kind are billed: a period with
    postpaid days is a postpaid bill of those days (the prepaid engine charged the others);
    a period wholly prepaid is a statement (``a.kind``, ``a.tariff_code``: the period's). Every
    segment's usage covers the meters installed at the service point during its days, each
    inside its own installation window (the usage port's rule), so a meter exchange needs no
    segment of its own."""
    by_code: dict[str, list[tuple[int, date, date | None]]] = defaultdict(list)
    terms = contract_terms(session, [a.id for a in agreements], p.last)
    codes = sorted({a.tariff_code for a in agreements} | {t.tariff_code for ts in terms.values() for t in ts})
    if override is None and codes:
        tv = TariffVersion.__table__.c
        for tv_id, code, frm, to in session.execute(
            select(tv.id, tv.code, tv.effective_from, tv.effective_to)
            .where(
                tv.code.in_(codes),
                tv.effective_from <= p.last,
                or_(tv.effective_to.is_(None), tv.effective_to >= p.first),
            )
            .order_by(tv.effective_from)
        ):
            by_code[code].append((tv_id, frm, to))
        missing = [v for vs in by_code.values() for v, _, _ in vs if v not in versions]
        if missing:
            for tv_id, definition in session.execute(select(tv.id, tv.definition).where(tv.id.in_(missing))):
                versions[tv_id] = stored_version(definition, f"tariff version {tv_id}")
    elif override is not None:
        versions[override[0]] = override[1]
    # (tariff, first, last) → the segments by version, or None where a day has no version:
    # most agreements of a run share their tariff and days
    seg_cache: dict[tuple[str, date, date], list[tuple[date, date, int]] | None] = {}
    jobs: list[Job] = []
    for a in agreements:
        first = a.start if a.start > p.first else p.first
        last = p.last if a.end is None or a.end > p.last else a.end
        mine = terms.get(a.id)
        if mine:
            pieces = _termed_pieces(a, mine, first, last, by_code, override, errors, p.code)
            if pieces is None:
                continue
            split = len(pieces) > 1
            jobs.extend(
                Job(a, k + 1, s, e, tv_id, kw, kva, split, True)
                for k, (s, e, tv_id, kw, kva) in enumerate(pieces)
            )
            continue
        key = (a.tariff_code, first, last)
        segs: list[tuple[date, date, int]] | None
        if override is not None:
            segs = [(first, last, override[0])]
        elif key in seg_cache:
            segs = seg_cache[key]
        else:
            segs = seg_cache[key] = _tariff_segments(by_code.get(a.tariff_code, []), first, last)
        if segs is None:
            errors.append(error(a, "billing.no_tariff", f"no version of tariff {a.tariff_code} for {p.code}"))
            continue
        if len(segs) == 1:
            s, e, tv_id = segs[0]
            jobs.append(Job(a, 1, s, e, tv_id, a.sanctioned_kw, a.contract_kva))
        else:
            jobs.extend(
                Job(a, k + 1, s, e, tv_id, a.sanctioned_kw, a.contract_kva, True)
                for k, (s, e, tv_id) in enumerate(segs)
            )
    return jobs


def _tariff_segments(
    versions: list[tuple[int, date, date | None]], first: date, last: date
) -> list[tuple[date, date, int]] | None:
    """The days ``first..last`` cut by the tariff versions in effect (``None``: some day has
    no version)."""
    segs = []
    for tv_id, frm, to in versions:
        s, e = max(first, frm), min(last, to or last)
        if s <= e:
            segs.append((s, e, tv_id))
    covered = sum((e - s).days + 1 for s, e, _ in segs)
    if not segs or covered < (last - first).days + 1:
        return None
    return segs


def _termed_pieces(
    a: Agreement,
    terms: list[Term],
    first: date,
    last: date,
    by_code: dict[str, list[tuple[int, date, date | None]]],
    override: tuple[int, TariffVersionDef] | None,
    errors: list[dict[str, Any]],
    period: str,
) -> list[tuple[date, date, int, Decimal, Decimal | None]] | None:
    """The segments of an agreement with contract terms: the days ``first..last`` cut at the
    terms' dates, only the days of the bill's kind (postpaid when any day is), each cut again by
    the versions of its term's tariff; neighbours under the same version and contract are
    joined (a term restating the contract starts no segment). Sets ``a.kind`` and
    ``a.tariff_code`` to the period's. ``None`` (an error recorded) when a day has no tariff
    version."""
    cuts = [t.effective_from for t in terms if first < t.effective_from <= last]
    spans = [
        (lo, hi, term_on(terms, lo))
        for lo, hi in zip([first, *cuts], [*(c - ONE_DAY for c in cuts), last], strict=True)
    ]
    a.kind = "postpaid" if any(t.payment_mode == "postpaid" for _, _, t in spans) else "prepaid"
    spans = [sp for sp in spans if sp[2].payment_mode == a.kind]
    a.tariff_code = spans[-1][2].tariff_code
    out: list[tuple[date, date, int, Decimal, Decimal | None]] = []
    for lo, hi, t in spans:
        segs = (
            [(lo, hi, override[0])]
            if override is not None
            else _tariff_segments(by_code.get(t.tariff_code, []), lo, hi)
        )
        if segs is None:
            errors.append(error(a, "billing.no_tariff", f"no version of tariff {t.tariff_code} for {period}"))
            return None
        for s, e, tv in segs:
            if (
                out
                and out[-1][2] == tv
                and out[-1][3:] == (t.sanctioned_kw, t.contract_kva)
                and out[-1][1] + ONE_DAY == s
            ):
                out[-1] = (out[-1][0], e, tv, t.sanctioned_kw, t.contract_kva)
            else:
                out.append((s, e, tv, t.sanctioned_kw, t.contract_kva))
    return out
