"""The bill run reads kVAh and export channels: kVAh billing with power factor, and net metering
with a bank carried from one month's bill to the next, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
from sqlalchemy import select
from test_billing import EXAMPLES, TZ

from meter2cash.cis.billing.models import Bill
from meter2cash.cis.billing.run import run_bills
from meter2cash.cis.ledger.journal import trial_balance
from meter2cash.cis.parties.models import Account, Person, Premise, ServiceAgreement, ServicePoint
from meter2cash.cis.tariffs.loader import load_tariff_file, store_tariff
from meter2cash.mdm.models import Channel, Installation, Meter
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.usage.local import LocalUsage


def site(session, tariff: str, series: dict[str, float], contract_kva: str | None = None) -> None:
    """One agreement on ``tariff`` with a meter whose channels carry constant 15-min values
    (kWh per interval) from September to November 2026."""
    path = EXAMPLES / f"{tariff}.toml"
    store_tariff(session, load_tariff_file(path), path.read_text())
    rts = ensure_catalogue(session)
    person, premise = Person(name="Site"), Premise(code="P-X", address="1 Mill Rd")
    session.add_all([person, premise])
    session.flush()
    account, sp = (
        Account(number="A-X", person_id=person.id, customer_class="industrial"),
        ServicePoint(code="SP-X", premise_id=premise.id),
    )
    session.add_all([account, sp])
    session.flush()
    session.add(
        ServiceAgreement(
            number="SA-X", account_id=account.id, service_point_id=sp.id,
            tariff_code=load_tariff_file(path).code,
            sanctioned_load_kw=Decimal(100), start_date=date(2025, 1, 1),
            contract_demand_kva=None if contract_kva is None else Decimal(contract_kva),
        )
    )  # fmt: skip
    meter = Meter(serial="M-X", status="installed")
    session.add(meter)
    session.flush()
    session.add(
        Installation(meter_id=meter.id, service_point_id=sp.id, installed_at=datetime(2025, 1, 1, tzinfo=UTC))
    )
    received = {}
    for code, per_interval in series.items():
        ch = Channel(meter_id=meter.id, reading_type_id=rts[code].id)
        session.add(ch)
        session.flush()
        for d in range(95):
            received[(ch.id, date(2026, 8, 31) + timedelta(days=d))] = (
                np.arange(96),
                np.full(96, per_interval),
            )
    MeasurementStore(session).merge(received, {cid: 900 for cid, _ in received})
    session.commit()


def test_kvah_billing_reads_the_kvah_channel_and_charges_the_pf_penalty(session):
    site(session, "ind-kvah", {"kwh_import_15m": 20.0, "kvah_import_15m": 25.0}, contract_kva="400")
    run_bills(session, "2026-10", tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    bill = session.scalars(select(Bill)).one()
    det = bill.determinants
    assert det["kvah_total"] == 25.0 * 96 * 31 and bill.total_kwh == Decimal(20 * 96 * 31)
    pf = next(ln for ln in bill.lines if ln.component == "power_factor")
    assert pf.quantity == Decimal("0.800") and pf.rate == Decimal(10)  # 10 steps below 0.90, 1 % each
    energy = [ln for ln in bill.lines if ln.component == "energy"]
    assert sum(ln.quantity for ln in energy) == Decimal(25 * 96 * 31) and energy[0].unit == "kVAh"
    assert det["terms"]["prompt_payment_days"] == 7
    assert trial_balance(session).total == 0


def test_net_metering_banks_a_surplus_into_the_next_month(session):
    # 0.1 kWh imported and 0.15 kWh exported every 15 minutes: a surplus of 4.8 kWh a day.
    site(session, "res-nm", {"kwh_import_15m": 0.1, "kwh_export_15m": 0.15})
    run_bills(session, "2026-10", tz=TZ, currency="INR", usage=LocalUsage)
    run_bills(session, "2026-11", tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    oct_, nov = sorted(session.scalars(select(Bill)), key=lambda b: b.period)
    assert (
        oct_.determinants["banked_kwh"] == 148.8 and nov.determinants["banked_kwh"] == 292.8
    )  # 4.8 × 31, × 61
    setoff = next(ln for ln in nov.lines if ln.component == "net_metering")
    assert setoff.quantity == Decimal("-288.000")  # all 9.6 kWh/day × 30 of November's import
    assert any(ln.description == "Minimum charge top-up" for ln in nov.lines)


def test_local_usage_carries_kvah_and_export(session):
    from datetime import date

    from meter2cash.core.timeutil import local_month_bounds
    from meter2cash.mdm.usage.port import UsageQuery

    site(session, "res-nm", {"kwh_import_15m": 0.1, "kwh_export_15m": 0.15, "kvah_import_15m": 0.125})
    sp = session.scalars(select(ServicePoint)).one()
    version = load_tariff_file(EXAMPLES / "res-nm.toml").versions[0]
    start, end = local_month_bounds("2026-10", TZ)
    query = UsageQuery(
        [sp.id], [sp.code], [date(2026, 10, 1)], [date(2026, 10, 31)], start, end, TZ,
        version.tou, version.period_names,
    )  # fmt: skip
    (batch,) = LocalUsage(session).usage(query)
    # 31 days × 96 intervals: 0.1 kWh imported, 0.125 kVAh and 0.15 kWh exported each
    assert round(float(batch.det.kwh_total[0]), 3) == 297.6
    assert batch.kvah_total is not None and round(float(batch.kvah_total[0]), 3) == 372.0
    assert batch.kwh_export is not None and round(float(batch.kwh_export[0]), 3) == 446.4
    assert batch.valid.tolist() == [2976] and batch.problems == []
