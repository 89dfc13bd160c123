"""The prepaid engine on SQLite and PostgreSQL: daily charges from interval data, recharges,
alerts, disconnect and reconnect requests, migration between payment modes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from meter2cash.cis.contracts.payment_mode import change_payment_mode
from meter2cash.cis.ledger.journal import account_balance, trial_balance
from meter2cash.cis.parties.models import Account, Person, Premise, ServiceAgreement, ServicePoint
from meter2cash.cis.payments.allocation import open_items
from meter2cash.cis.payments.receipts import receive
from meter2cash.cis.prepaid.daily_charge import run_daily
from meter2cash.cis.prepaid.models import PrepaidCharge, Wallet
from meter2cash.cis.prepaid.policy import PrepaidPolicy
from meter2cash.cis.prepaid.wallet import (
    recharge_account,
    reconnect_report,
    report_command,
    wallet_balance,
)
from meter2cash.cis.rating.rate import rate_arrays
from meter2cash.cis.rating.types import RatingInput
from meter2cash.cis.reports.receivables import ageing
from meter2cash.cis.tariffs.loader import load_tariff_file, store_tariff, tariff_version_for
from meter2cash.core.timeutil import local_midnight, local_month_bounds
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.models import Channel, Installation, Meter
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.usage.local import LocalUsage
from meter2cash.notify.models import Notification

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tariffs"
TZ = "Asia/Kolkata"
D = Decimal
#: never forbidden: the tests choose when disconnection is allowed
ANYTIME = PrepaidPolicy(quiet_from=0, quiet_until=0, sundays=False, holiday_country="", grace_hours=0)


def build_prepaid(
    session,
    n: int = 3,
    tariff: str = "res-pp",
    kwh_per_slot: float = 0.1,
    seed: int = 3,
    rt: str = "kwh_import_15m",
):
    """``n`` prepaid agreements with 15-minute data for October 2026; returns account ids."""
    path = EXAMPLES / f"{tariff}.toml"
    store_tariff(session, load_tariff_file(path), path.read_text())
    rts = ensure_catalogue(session)
    rng = np.random.default_rng(seed)
    received, accounts = {}, []
    for i in range(n):
        person = Person(name=f"Customer {i}", phone=f"+9198000000{i:02d}", email=f"c{i}@example.org")
        premise = Premise(code=f"P-{i}")
        session.add_all([person, premise])
        session.flush()
        acct = Account(number=f"A-{i}", person_id=person.id)
        sp = ServicePoint(code=f"SP-{i}", premise_id=premise.id)
        meter = Meter(serial=f"M-{i}", status="installed")
        session.add_all([acct, sp, meter])
        session.flush()
        session.add(
            ServiceAgreement(
                number=f"SA-{i}",
                account_id=acct.id,
                service_point_id=sp.id,
                tariff_code=tariff.upper(),
                payment_mode="prepaid",
                sanctioned_load_kw=D("2"),
                start_date=date(2026, 1, 1),
            )
        )
        ch = Channel(meter_id=meter.id, reading_type_id=rts[rt].id)
        session.add(ch)
        session.flush()
        session.add(
            Installation(
                meter_id=meter.id, service_point_id=sp.id, installed_at=datetime(2026, 1, 1, tzinfo=UTC)
            )
        )
        for d in range(33):
            day = date(2026, 9, 30) + timedelta(days=d)
            slots = 86400 // rts[rt].interval_s
            received[(ch.id, day)] = (np.arange(slots), rng.uniform(0, 2 * kwh_per_slot, slots).round(3))
        accounts.append(acct.id)
    session.flush()
    MeasurementStore(session).merge(received, {cid: rts[rt].interval_s for cid, _ in received})
    session.commit()
    return accounts


def test_daily_charges_add_up_to_the_month_and_the_ledger_reconciles(session):
    accounts = build_prepaid(session)
    for acct in accounts:
        recharge_account(session, acct, D("5000.00"), channel="cash", currency="INR", tz=TZ, policy=ANYTIME)
    for d in range(1, 32):
        result = run_daily(
            session, date(2026, 10, d), tz=TZ, currency="INR", policy=ANYTIME, usage=LocalUsage
        )
        assert result.charged == 3 and not result.errors
    session.commit()
    again = run_daily(session, date(2026, 10, 31), tz=TZ, currency="INR", policy=ANYTIME, usage=LocalUsage)
    assert again.charged == 0 and again.already == 3

    # The month's energy from the stored intervals (not the engine's running totals), rated once
    # as the monthly statement rates it: the daily charges add up to it to the paisa.
    _, vdef = tariff_version_for(session, "RES-PP", date(2026, 10, 1))
    start, end = local_month_bounds("2026-10", TZ)
    rows = session.execute(
        select(Wallet.id, Channel.id)
        .join(Account, Account.id == Wallet.account_id)
        .join(Meter, Meter.serial == func.replace(Account.number, "A-", "M-"))
        .join(Channel, Channel.meter_id == Meter.id)
        .where(Wallet.account_id.in_(accounts))
        .order_by(Wallet.id)
    ).all()
    assert len(rows) == 3
    window = MeasurementStore(session).read_window([c for _, c in rows], start, end, 900)
    assert window.values.shape == (3, 31 * 96) and not np.isnan(window.values).any()
    wh = np.rint(window.values.sum(axis=1) * 1000).astype(np.int64)
    n = len(rows)
    month = rate_arrays(
        vdef,
        RatingInput(
            wh[:, None], np.zeros(n, np.int64), np.full(n, 2000), np.full(n, 31), np.full(n, 31),
            np.ones(n, bool),
        ),
    )  # fmt: skip
    totals = dict(
        session.execute(
            select(PrepaidCharge.wallet_id, func.sum(PrepaidCharge.amount)).group_by(PrepaidCharge.wallet_id)
        ).all()
    )
    for k, (wid, _) in enumerate(rows):
        assert totals[wid] == Decimal(int(month.total[k])).scaleb(-month.scale)
    last = {
        c.wallet_id: c
        for c in session.scalars(select(PrepaidCharge).where(PrepaidCharge.day == date(2026, 10, 31)))
    }
    assert [sum(last[wid].mtd_wh) for wid, _ in rows] == wh.tolist()
    # One day by hand: 1 October of the first wallet (nothing charged before it). RES-PP rates
    # the month-to-date energy x [kWh] at the first slab's 3.10 (x < 100 kWh), 30.00 a month fixed
    # for 1 of 31 days, a prepaid discount of 0.25/kWh, 5 % duty on the three; lines to 10⁻⁴
    # (half even), the total to the paisa.
    x = Decimal(str(round(float(window.values[0, :96].sum()), 3)))
    q4, paisa = Decimal("0.0001"), Decimal("0.01")
    energy = (x * Decimal("3.10")).quantize(q4, ROUND_HALF_EVEN)
    fixed = (Decimal(30) / 31).quantize(q4, ROUND_HALF_EVEN)  # 0.9677
    discount = (-x * Decimal("0.25")).quantize(q4, ROUND_HALF_EVEN)
    duty = ((energy + fixed + discount) * Decimal("0.05")).quantize(q4, ROUND_HALF_EVEN)
    first_day = session.scalars(
        select(PrepaidCharge).where(
            PrepaidCharge.wallet_id == rows[0][0], PrepaidCharge.day == date(2026, 10, 1)
        )
    ).one()
    assert first_day.wh == int(x * 1000)
    assert first_day.amount == (energy + fixed + discount + duty).quantize(paisa, ROUND_HALF_EVEN)
    assert all(c.mtd_days == 31 for c in last.values())
    # every wallet equals the sum of its ledger entries; the books balance
    for acct in accounts:
        wallet = session.scalars(select(Wallet).where(Wallet.account_id == acct)).one()
        charged = session.scalar(
            select(func.sum(PrepaidCharge.amount)).where(PrepaidCharge.account_id == acct)
        )
        assert (
            wallet_balance(session, wallet)
            == D("5000.00") - charged
            == -account_balance(session, acct, "2100")
        )
    assert trial_balance(session).total == 0


def test_missing_day_is_caught_up_next_day(session):
    accounts = build_prepaid(session, n=1)
    run_daily(session, date(2026, 10, 1), tz=TZ, currency="INR", policy=ANYTIME, usage=LocalUsage)
    # day 3 without day 2: the run covers both days
    run_daily(session, date(2026, 10, 3), tz=TZ, currency="INR", policy=ANYTIME, usage=LocalUsage)
    charge = session.scalars(select(PrepaidCharge).where(PrepaidCharge.day == date(2026, 10, 3))).one()
    assert charge.mtd_days == 3
    assert charge.account_id == accounts[0]


def test_alerts_fire_once_per_crossing_and_disconnect_then_reconnect(session):
    policy = PrepaidPolicy(
        alerts=("50%", "0%"),
        quiet_from=0,
        quiet_until=0,
        sundays=False,
        holiday_country="",
        grace_hours=0,
        emergency_credit=D("0"),
    )
    (acct,) = build_prepaid(session, n=1, kwh_per_slot=0.2)
    recharge_account(session, acct, D("200.00"), channel="cash", currency="INR", tz=TZ, policy=policy)
    alerts = []
    for d in range(1, 8):
        run_daily(session, date(2026, 10, d), tz=TZ, currency="INR", policy=policy, usage=LocalUsage)
        alerts.append(session.scalar(select(func.count(Notification.id))))
    wallet = session.scalars(select(Wallet)).one()
    assert wallet_balance(session, wallet) < 0
    assert alerts[-1] == 2  # 50% and 0% each fired once, though the balance kept falling
    cmd = session.scalars(select(MeterCommand)).one()
    assert (cmd.kind, cmd.reason, cmd.status) == ("disconnect", "prepaid.no_credit", "requested")
    requested = cmd.requested_at
    assert cmd.meter_id is not None  # the meter installed at the agreement's service point
    for status in ("sent", "acknowledged", "executed"):
        report_command(session, cmd.id, status, at=requested + timedelta(minutes=5),
                       result={"relay": "disconnected"} if status == "executed" else None)  # fmt: skip
    assert wallet.supply == "disconnected"
    # a recharge bringing the balance positive requests reconnection at once
    at = datetime(2026, 10, 8, 21, 0, tzinfo=UTC)  # inside the default quiet hours: reconnection is allowed
    recharge_account(session, acct, D("500.00"), channel="online", currency="INR", tz=TZ, at=at)
    session.refresh(wallet)
    rc = session.scalars(select(MeterCommand).where(MeterCommand.kind == "connect")).one()
    assert rc.requested_at == at and wallet.supply == "reconnect_pending"
    report_command(session, rc.id, "sent", at=at + timedelta(minutes=1))
    report_command(session, rc.id, "executed", at=at + timedelta(minutes=45))
    assert wallet.supply == "reconnect_pending"  # executed, but the relay is not read back yet
    read_back = session.scalars(select(MeterCommand).where(MeterCommand.reason == "relay.read_back")).one()
    report_command(session, read_back.id, "sent", at=at + timedelta(minutes=46))
    report_command(
        session, read_back.id, "executed", at=at + timedelta(minutes=47), result={"relay": "connected"}
    )
    session.refresh(wallet)
    assert wallet.supply == "connected"
    assert reconnect_report(session) == {
        "executed": 1,
        "median_min": 47.0,  # from the request to the relay read back connected
        "max_min": 47.0,
        "within_target": 1.0,
    }
    assert trial_balance(session).total == 0


def test_no_disconnect_in_quiet_hours(session):
    (_acct,) = build_prepaid(session, n=1)
    policy = PrepaidPolicy(grace_hours=0, emergency_credit=D("0"))
    late = local_midnight(date(2026, 10, 7), TZ) + timedelta(hours=20)  # Wednesday 20:00 local
    result = run_daily(
        session, date(2026, 10, 6), tz=TZ, currency="INR", policy=policy, at=late, usage=LocalUsage
    )
    assert result.evaluation["disconnect_requests"] == 0
    assert result.evaluation["disconnects_deferred"] == 1
    assert session.scalar(select(func.count(MeterCommand.id))) == 0


def test_migration_moves_credit_into_the_wallet_and_back(session):
    (acct,) = build_prepaid(session, n=1)
    sa = session.scalars(select(ServiceAgreement)).one()
    sa.payment_mode = "postpaid"
    receive(session, acct, D("120.00"), channel="cash", currency="INR", received_on=date(2026, 10, 1))
    today = date(2026, 10, 20)
    change_payment_mode(
        session,
        sa.number,
        date(2026, 10, 1),
        "prepaid",
        reason="r",
        by="t",
        today=today,
        tz=TZ,
        currency="INR",
        usage=LocalUsage,
    )
    wallet = session.scalars(select(Wallet)).one()
    assert wallet_balance(session, wallet) == D("120.00")
    assert account_balance(session, acct, "1100") == 0
    # nothing open, no credit
    assert all(r.total == 0 for r in ageing(session, date(2026, 12, 31), [acct]).rows)
    assert open_items(session, [acct]) == []
    change_payment_mode(
        session,
        sa.number,
        date(2026, 10, 2),
        "postpaid",
        reason="r",
        by="t",
        today=today,
        tz=TZ,
        currency="INR",
        usage=LocalUsage,
    )
    assert account_balance(session, acct, "1100") == D("-120.00")
    assert wallet_balance(session, wallet) == 0 and sa.payment_mode == "postpaid"
    assert trial_balance(session).total == 0
    # receivables' open items and credit explain the ledger after both moves
    row = next(r for r in ageing(session, date(2026, 12, 31), [acct]).rows)
    assert row.total == D("-120.00") and all(v == 0 for v in row.buckets.values())


def test_hourly_data_at_a_half_hour_offset_is_charged_without_gaps_or_overlaps(session):
    """At UTC+05:30 local midnight is not on the hourly grid: each interval counts on one day."""
    build_prepaid(session, n=1, rt="kwh_import_60m")
    for d in range(1, 4):
        run_daily(session, date(2026, 10, d), tz=TZ, currency="INR", policy=ANYTIME, usage=LocalUsage)
    charges = session.scalars(select(PrepaidCharge).order_by(PrepaidCharge.day)).all()
    assert [c.mtd_days for c in charges] == [1, 2, 3]
    start = local_midnight(date(2026, 10, 1), TZ) - timedelta(minutes=30)
    ch = session.scalar(select(Channel.id))
    values = MeasurementStore(session).read_window([ch], start, start + timedelta(days=3), 3600).values[0]
    assert sum(c.wh for c in charges) == round(float(np.nansum(values)) * 1000)


def test_recharge_before_the_disconnect_is_sent_cancels_it(session):
    (acct,) = build_prepaid(session, n=1)
    policy = PrepaidPolicy(
        quiet_from=0, quiet_until=0, sundays=False, holiday_country="", grace_hours=0, emergency_credit=D("0")
    )
    run_daily(session, date(2026, 10, 1), tz=TZ, currency="INR", policy=policy, usage=LocalUsage)
    cmd = session.scalars(select(MeterCommand)).one()
    assert cmd.status == "requested"
    recharge_account(session, acct, D("100.00"), channel="cash", currency="INR", tz=TZ, policy=policy)
    session.refresh(cmd)
    wallet = session.scalars(select(Wallet)).one()
    assert (cmd.status, wallet.supply) == ("cancelled", "connected")
    assert cmd.detail == "balance restored before sending" and cmd.finished_at is not None
    assert session.scalar(select(func.count(MeterCommand.id))) == 1  # no reconnect needed
