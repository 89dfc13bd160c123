"""Segments on a tariff version change, bimonthly cycles, the date-driven schedule and shadow
billing, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from test_billing import EXAMPLES, PERIOD, TZ, build_fleet

from meter2cash.cis.billing.models import Bill, BillCycle, BillCycleAssignment, BillSegment
from meter2cash.cis.billing.periods import billing_period, cycles_due
from meter2cash.cis.billing.run import run_bills
from meter2cash.cis.billing.shadow import shadow_run
from meter2cash.cis.parties.models import ServiceAgreement
from meter2cash.cis.tariffs.loader import parse_tariff
from meter2cash.mdm.usage.local import LocalUsage

RES = (EXAMPLES / "res-lt1.toml").read_text()
TWO_VERSIONS = (
    RES.replace("effective_from = 2026-04-01", "effective_from = 2026-04-01\neffective_to = 2026-10-15")
    + """
[[versions]]
effective_from = 2026-10-16
[versions.fixed]
per_month = "62"
[versions.energy]
method = "telescopic"
slabs = [{ upto = "100", rate = "3.40" }, { rate = "5.00" }]
"""
)


def test_a_version_change_inside_the_month_splits_the_bill_into_segments(session):
    build_fleet(session, tariffs={"res-lt1": TWO_VERSIONS})
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    bill = next(b for b in session.scalars(select(Bill)) if b.service_agreement.number == "SA-1")
    segs = session.scalars(
        select(BillSegment).where(BillSegment.bill_id == bill.id).order_by(BillSegment.seq)
    ).all()
    assert [(s.start_date, s.end_date) for s in segs] == [
        (date(2026, 10, 1), date(2026, 10, 15)),
        (date(2026, 10, 16), date(2026, 10, 31)),
    ]
    assert sum(s.total for s in segs) == bill.total and sum(s.total_kwh for s in segs) == bill.total_kwh
    fixed = [ln for ln in bill.lines if ln.component == "fixed" and "sanctioned" not in ln.description]
    # 50 × 15/31 = 24.19 and 62 × 16/31 = 32.00
    assert [ln.amount for ln in fixed] == [Decimal("24.19"), Decimal("32.00")]
    assert fixed[0].description.startswith("01 Oct–15 Oct: Fixed charge")
    assert [ln.segment for ln in fixed] == [1, 2]
    assert {ln.segment for ln in bill.lines if ln.description.startswith("16 Oct–31 Oct")} == {2}
    assert bill.total == sum(ln.amount for ln in bill.lines)


def test_bimonthly_cycle_bills_two_months_and_leaves_the_monthly_run(session):
    build_fleet(session)
    sa1 = session.scalars(select(ServiceAgreement).where(ServiceAgreement.number == "SA-1")).one()
    session.add(BillCycle(code="bimonthly-odd", frequency="bimonthly", start_month_parity=1, bill_day=5))
    session.flush()
    session.add(BillCycleAssignment(service_agreement_id=sa1.id, cycle_code="bimonthly-odd"))
    session.commit()
    monthly = run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    assert len(monthly.bills) == 3
    result = run_bills(session, "2026-09", tz=TZ, currency="INR", cycle="bimonthly-odd", usage=LocalUsage)
    session.commit()
    (bill,) = [session.get(Bill, i) for i in result.bills]
    assert bill.cycle == "bimonthly-odd" and bill.determinants["days_in_period"] == 61
    fixed = next(ln for ln in bill.lines if ln.description == "Fixed charge")
    assert fixed.quantity == 2 and fixed.amount == Decimal("100.00")
    assert bill.estimated  # September has no data: estimated from October's average
    assert cycles_due(session, date(2026, 11, 5)) == [("bimonthly-odd", "2026-09")]
    assert cycles_due(session, date(2026, 11, 1)) == [("monthly", "2026-10")]
    assert billing_period("2026-11", TZ, 2).month_codes == ["2026-11", "2026-12"]


def test_shadow_billing_reports_differences_and_issues_nothing(session):
    build_fleet(session)
    dearer = parse_tariff(RES.replace('rate = "4.50"', 'rate = "5.00"')).versions[0]
    before = session.scalar(select(func.count()).select_from(Bill))
    report = shadow_run(session, PERIOD, dearer, tz=TZ, usage=LocalUsage)
    assert session.scalar(select(func.count()).select_from(Bill)) == before
    assert [ln.service_agreement for ln in report.lines] == ["SA-1", "SA-2"]
    assert all(ln.difference > 0 for ln in report.lines)
    assert report.to_dict()["difference"] == str(report.shadow_total - report.current_total)
    assert {e["service_agreement"] for e in report.errors} == {"SA-5", "SA-6"}
