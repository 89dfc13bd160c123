"""The prepaid engine charges each day at the contract term in effect on that day: a load change
dated in the future changes nothing before its date, and from its date on the daily charge is
at the new load (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
from sqlalchemy import select

from conftest import attach_customer, make_meter
from meter2cash.cis.contracts.changes import change_load
from meter2cash.cis.parties.models import ServiceAgreement
from meter2cash.cis.parties.terms import Term, sanctioned_kw_days
from meter2cash.cis.prepaid.daily_charge import month_loads_w, run_daily
from meter2cash.cis.prepaid.models import PrepaidCharge, Wallet
from meter2cash.cis.prepaid.wallet import ensure_wallets
from meter2cash.cis.rating.rate import rate_arrays
from meter2cash.cis.rating.types import RatingInput
from meter2cash.cis.tariffs.loader import load_tariff_file, store_tariff, tariff_version_for
from meter2cash.mdm.models import Channel
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.usage.local import LocalUsage

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tariffs"
TZ = "Asia/Kolkata"
D = Decimal
CHANGE = date(2026, 10, 11)
#: RES-LT1: 20 INR per kW of sanctioned load per month, electricity duty 5 % on it
PER_KW_DAY = D(20) * D("1.05") / 31


def build(session, loads: list[str]) -> dict[str, int]:
    """One RES-LT1 prepaid agreement per load (``SA-0``…), all with the same 15-minute data for
    October 2026; returns agreement number → wallet id."""
    path = EXAMPLES / "res-lt1.toml"
    store_tariff(session, load_tariff_file(path), path.read_text())
    rt = ensure_catalogue(session)["kwh_import_15m"]
    rng = np.random.default_rng(5)
    days = [date(2026, 9, 30) + timedelta(days=d) for d in range(33)]
    values = {d: rng.uniform(0, 0.3, 96).round(3) for d in days}
    received = {}
    for i, load in enumerate(loads):
        cid = make_meter(session, f"{i}")["kwh_import_15m"]
        meter_id = session.scalar(select(Channel.meter_id).where(Channel.id == cid))
        attach_customer(
            session, meter_id, f"{i}", "residential", tariff_code="RES-LT1", payment_mode="prepaid",
            sanctioned_load_kw=D(load),
        )  # fmt: skip
        for d in days:
            received[(cid, d)] = (np.arange(96), values[d])
    MeasurementStore(session).merge(received, {cid: rt.interval_s for cid, _ in received})
    ensure_wallets(session, date(2026, 10, 1))
    session.commit()
    return dict(
        session.execute(
            select(ServiceAgreement.number, Wallet.id).join(
                Wallet, Wallet.service_agreement_id == ServiceAgreement.id
            )
        ).all()
    )


def charges(session, wallet_id: int) -> dict[date, Decimal]:
    return dict(
        session.execute(
            select(PrepaidCharge.day, PrepaidCharge.amount).where(PrepaidCharge.wallet_id == wallet_id)
        ).all()
    )


def test_a_future_load_change_charges_the_new_load_only_from_its_date(session):
    wallets = build(session, ["2", "2", "5"])
    # recorded before October: the agreement's columns take the latest term at once
    change = change_load(session, "SA-0", CHANGE, "5", reason="new air conditioner", by="test")
    session.commit()
    assert change.current
    assert (
        session.scalar(select(ServiceAgreement.sanctioned_load_kw).where(ServiceAgreement.number == "SA-0"))
        == 5
    )
    for d in range(1, 32):
        result = run_daily(
            session, date(2026, 10, d), tz=TZ, currency="INR", evaluate=False, usage=LocalUsage
        )
        assert result.charged == 3 and not result.errors
    session.commit()
    changed, low, high = (charges(session, wallets[n]) for n in ("SA-0", "SA-1", "SA-2"))
    for d in range(1, 32):
        day = date(2026, 10, d)
        if day < CHANGE:  # the same data at the same load: the same charge to the paisa
            assert changed[day] == low[day], day
        else:  # the new load's fixed charge, to the paisa the rounding of each day moves
            assert abs(changed[day] - low[day] - 3 * PER_KW_DAY) <= D("0.03"), day
            assert abs(changed[day] - high[day]) <= D("0.03"), day
    # the charges of the month add up to its rating at the load of each day, averaged
    _, vdef = tariff_version_for(session, "RES-LT1", date(2026, 10, 1))
    last = session.scalars(
        select(PrepaidCharge).where(
            PrepaidCharge.wallet_id == wallets["SA-0"], PrepaidCharge.day == date(2026, 10, 31)
        )
    ).one()
    avg_w = round((2000 * 10 + 5000 * 21) / 31)
    month = rate_arrays(
        vdef,
        RatingInput(
            np.asarray([last.mtd_wh], np.int64), np.asarray([last.mtd_demand_w]), np.asarray([avg_w]),
            np.asarray([31]), np.asarray([31]), np.ones(1, bool),
        ),
    )  # fmt: skip
    assert sum(changed.values()) == Decimal(int(month.total[0])).scaleb(-month.scale)
    assert abs(sum(changed.values()) - sum(low.values()) - 3 * 21 * PER_KW_DAY) <= D("0.05")


def test_a_catch_up_run_across_the_change_date_charges_each_day_at_its_load(session):
    wallets = build(session, ["2", "2"])
    change_load(session, "SA-0", CHANGE, "5", reason="new pump", by="test")
    session.commit()
    for d in range(1, 9):
        run_daily(session, date(2026, 10, d), tz=TZ, currency="INR", evaluate=False, usage=LocalUsage)
    # no run from the 9th to the 13th: the run of the 14th charges 9–14 Oct, four of them at 5 kW
    result = run_daily(session, date(2026, 10, 14), tz=TZ, currency="INR", evaluate=False, usage=LocalUsage)
    session.commit()
    assert result.charged == 2 and not result.errors
    changed, low = (charges(session, wallets[n]) for n in ("SA-0", "SA-1"))
    assert all(changed[date(2026, 10, d)] == low[date(2026, 10, d)] for d in range(1, 9))
    day = date(2026, 10, 14)
    assert abs(changed[day] - low[day] - 3 * 4 * PER_KW_DAY) <= D("0.03")


def test_a_backdated_change_applies_from_the_next_charge_on(session):
    wallets = build(session, ["2", "2", "5"])
    for d in range(1, 16):
        run_daily(session, date(2026, 10, d), tz=TZ, currency="INR", evaluate=False, usage=LocalUsage)
    change_load(session, "SA-0", CHANGE, "5", reason="found on inspection", by="test")
    for d in range(16, 32):
        run_daily(session, date(2026, 10, d), tz=TZ, currency="INR", evaluate=False, usage=LocalUsage)
    session.commit()
    changed, low, high = (charges(session, wallets[n]) for n in ("SA-0", "SA-1", "SA-2"))
    # days already charged stay as charged; the days after the change at its load
    assert all(changed[date(2026, 10, d)] == low[date(2026, 10, d)] for d in range(1, 16))
    for d in range(16, 32):
        day = date(2026, 10, d)
        assert abs(changed[day] - high[day]) <= D("0.03"), day


def test_kw_days_and_month_loads_follow_the_terms():
    terms = [Term(date(2026, 1, 1), D("2"), None), Term(CHANGE, D("5"), None)]
    assert sanctioned_kw_days(terms, date(2026, 10, 1), date(2026, 10, 10)) == 20
    assert sanctioned_kw_days(terms, date(2026, 10, 9), date(2026, 10, 12)) == 2 + 2 + 5 + 5
    assert sanctioned_kw_days(terms, date(2026, 10, 2), date(2026, 10, 1)) == 0
    # before the first term's date its load applies (as term_on)
    late = [Term(date(2026, 10, 5), D("3"), None)]
    assert sanctioned_kw_days(late, date(2026, 10, 1), date(2026, 10, 6)) == 18
    # (after, before) [W]: the first day; a day at the old load; the change's day; a catch-up
    assert month_loads_w(terms, 0, date(2026, 10, 1), date(2026, 10, 1)) == (2000, 2000)
    assert month_loads_w(terms, 9, date(2026, 10, 10), date(2026, 10, 10)) == (2000, 2000)
    assert month_loads_w(terms, 10, CHANGE, CHANGE) == (round(25000 / 11), 2000)
    assert month_loads_w(terms, 8, date(2026, 10, 9), date(2026, 10, 14)) == (round(40000 / 14), 2000)
