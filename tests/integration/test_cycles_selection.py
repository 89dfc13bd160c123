"""Which agreements a bill run reads, and reading rows by many ids, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import insert, select

from meter2cash.cis.billing.models import BillCycle, BillCycleAssignment
from meter2cash.cis.billing.periods import MONTHLY, billing_period
from meter2cash.cis.billing.planning import select_agreements
from meter2cash.cis.parties.models import (
    Account,
    ContractTerm,
    Person,
    Premise,
    ServiceAgreement,
    ServicePoint,
)
from meter2cash.cis.parties.terms import contract_terms
from meter2cash.db_query import id_filters

TZ = "Asia/Kolkata"


def test_id_filters_find_every_id_asked_for_and_no_other(session):
    n = 4500  # more than one IN list on SQLite
    session.execute(insert(Person), [{"id": i, "name": f"P{i}"} for i in range(1, n + 1)])
    wanted = [*range(2, n + 1, 2), n + 7]  # an id that is not there
    where = id_filters(session, Person.__table__.c.id, wanted)
    found = [i for w in where for i in session.scalars(select(Person.id).where(w))]
    assert sorted(found) == list(range(2, n + 1, 2))
    assert id_filters(session, Person.__table__.c.id, []) == []


def test_a_cycle_reads_its_own_agreements_and_monthly_those_assigned_elsewhere_not(session):
    session.add_all(
        [
            BillCycle(code=MONTHLY, frequency="monthly", bill_day=1),
            BillCycle(code="bimonthly-odd", frequency="bimonthly", start_month_parity=1, bill_day=5),
        ]
    )
    session.add(Person(id=1, name="Customer"))
    session.add(Premise(id=1, code="P-1"))
    session.flush()
    session.add(Account(id=1, number="A-1", person_id=1, customer_class="commercial"))
    session.add(ServicePoint(id=1, code="SP-1", premise_id=1))
    session.flush()
    for i, end in ((1, None), (2, None), (3, None), (4, date(2026, 8, 31)), (5, None)):
        session.add(
            ServiceAgreement(
                id=i, number=f"SA-{i}", account_id=1, service_point_id=1, tariff_code="COM-TOU",
                sanctioned_load_kw=Decimal("12.5"), contract_demand_kva=Decimal(15) if i == 1 else None,
                start_date=date(2026, 1, 1), end_date=end,
            )
        )  # fmt: skip
    session.flush()
    session.add_all(
        [
            BillCycleAssignment(service_agreement_id=2, cycle_code="bimonthly-odd"),
            BillCycleAssignment(service_agreement_id=3, cycle_code=MONTHLY),
            BillCycleAssignment(service_agreement_id=5, cycle_code="bimonthly-odd"),
        ]
    )
    session.flush()
    october = billing_period("2026-10", TZ)
    monthly = select_agreements(session, october, MONTHLY)
    assert [a.id for a in monthly] == [1, 3]  # SA-4 ended before October
    assert (monthly[0].sanctioned_kw, monthly[0].contract_kva, monthly[1].contract_kva) == (
        Decimal("12.5"),
        Decimal(15),
        None,
    )
    assert monthly[0].customer_class == "commercial" and monthly[0].end is None
    bimonthly = billing_period("2026-09", TZ, 2)
    assert [a.id for a in select_agreements(session, bimonthly, "bimonthly-odd")] == [2, 5]
    # given ids: whatever their cycle, still only those active in the period
    assert [a.id for a in select_agreements(session, october, MONTHLY, [5, 4, 2, 2])] == [2, 5]
    assert select_agreements(session, october, MONTHLY, []) == []
    terms = [(2, date(2026, 1, 1), 10, None), (2, date(2026, 10, 11), 20, "22.5"),
             (2, date(2026, 12, 1), 30, None), (3, date(2026, 1, 1), 5, None)]  # fmt: skip
    for sa, frm, kw, kva in terms:
        session.add(
            ContractTerm(
                service_agreement_id=sa, effective_from=frm, sanctioned_load_kw=Decimal(kw),
                contract_demand_kva=None if kva is None else Decimal(kva),
                payment_mode="postpaid", tariff_code="T",
            )
        )  # fmt: skip
    session.flush()
    by_ids = contract_terms(session, [1, 2], date(2026, 10, 31))
    assert {
        k: [(t.effective_from, t.sanctioned_kw, t.contract_kva) for t in v] for k, v in by_ids.items()
    } == {2: [(date(2026, 1, 1), Decimal(10), None), (date(2026, 10, 11), Decimal(20), Decimal("22.5"))]}
    by_query = contract_terms(
        session, select(ServiceAgreement.id).where(ServiceAgreement.id > 1), date(2026, 12, 31)
    )
    assert [len(by_query[2]), len(by_query[3])] == [3, 1]
