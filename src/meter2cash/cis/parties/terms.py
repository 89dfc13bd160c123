"""Contract terms as services read them: the dated terms of agreements and the term in effect on a day."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import (
    ColumnElement,
    Select,
    select,
)
from sqlalchemy.orm import Session

from meter2cash.cis.parties.models import ContractTerm
from meter2cash.core.timeutil import ONE_DAY
from meter2cash.db import Quantity
from meter2cash.db_query import ScaledValues, id_filters, raw


@dataclass(frozen=True, slots=True)
class Term:
    """A contract term as billing reads it."""

    effective_from: date
    sanctioned_kw: Decimal
    contract_kva: Decimal | None
    payment_mode: str = "postpaid"
    tariff_code: str = ""


def contract_terms(
    session: Session, sa_ids: Sequence[int] | Select[int], until: date
) -> dict[int, list[Term]]:
    """Agreement → its contract terms effective on or before ``until``, oldest first. The
    agreements are given by id or as a query of their ids (read in the same statement)."""
    ct = ContractTerm.__table__.c
    stmt = select(
        ct.service_agreement_id, ct.effective_from, raw(ct.sanctioned_load_kw), raw(ct.contract_demand_kva),
        ct.payment_mode, ct.tariff_code,
    ).where(ct.effective_from <= until)  # fmt: skip
    wheres: list[ColumnElement[bool]]
    if isinstance(sa_ids, Select):
        wheres = [ct.service_agreement_id.in_(sa_ids.scalar_subquery())]
    else:
        wheres = id_filters(session, ct.service_agreement_id, sa_ids)
    qty = ScaledValues(Quantity.scale)
    out: dict[int, list[Term]] = defaultdict(list)
    for where in wheres:
        for sa, frm, kw, kva, mode, tariff in session.execute(
            stmt.where(where).order_by(ct.service_agreement_id, ct.effective_from)
        ).all():
            out[sa].append(Term(frm, qty[kw], qty.get_or_none(kva), mode, tariff))
    return dict(out)


def term_on(terms: list[Term], day: date) -> Term:
    """The term in effect on ``day``: the latest one from ``day`` or before (the earliest one
    before the first term's date)."""
    current = terms[0]
    for t in terms:
        if t.effective_from > day:
            break
        current = t
    return current


def sanctioned_kw_days(terms: list[Term], first: date, last: date) -> Decimal:
    """The sanctioned load in effect on each day of ``first..last`` (see :func:`term_on`),
    added up [kW·day]; 0 for no days."""
    total = Decimal(0)
    for k, t in enumerate(terms):
        lo = first if k == 0 else max(first, t.effective_from)
        hi = last if k + 1 == len(terms) else min(last, terms[k + 1].effective_from - ONE_DAY)
        if lo <= hi:
            total += t.sanctioned_kw * ((hi - lo).days + 1)
    return total
