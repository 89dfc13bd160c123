"""Money and dates at the edge of the services, on SQLite and PostgreSQL: amounts are decimal
amounts with bounded digits in the currency's minor unit, dates lie in a sane window, and a
recharge never cuts a customer off."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from test_payments import debit, make_account
from test_prepaid import ANYTIME, TZ, build_prepaid

from meter2cash.cis.collections.dunning import promise_to_pay, write_off
from meter2cash.cis.payments.models import Payment
from meter2cash.cis.payments.receipts import receive, refund
from meter2cash.cis.prepaid.daily_charge import run_daily
from meter2cash.cis.prepaid.models import Wallet
from meter2cash.cis.prepaid.policy import PrepaidPolicy
from meter2cash.cis.prepaid.wallet import grant_emergency_credit, recharge_account, wallet_balance
from meter2cash.core.errors import InvalidInput
from meter2cash.core.timeutil import utcnow
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.usage.local import LocalUsage

D = Decimal


@pytest.mark.parametrize(
    "amount",
    [
        D("1E+999"),
        D("1.34E+308"),
        D("1234567890123456789012345678"),
        D("NaN"),
        D("Infinity"),
        D("0.001"),
        D("-5"),
    ],
)
def test_impossible_amounts_are_refused_with_a_code(session, amount):
    a = make_account(session)
    with pytest.raises(InvalidInput) as err:
        receive(session, a, amount, channel="cash", currency="INR")
    assert err.value.code == "payment.bad_amount"
    assert session.scalar(select(func.count(Payment.id))) == 0


def test_a_float_is_not_money(session):
    a = make_account(session)
    with pytest.raises(InvalidInput) as err:
        receive(session, a, 12.5, channel="cash", currency="INR")  # type: ignore[arg-type]
    assert err.value.code == "payment.bad_amount"


def test_minor_units_follow_iso_4217(session):
    a = make_account(session)
    with pytest.raises(InvalidInput):
        receive(session, a, D("100.5"), channel="cash", currency="JPY")  # yen has no minor unit
    assert receive(session, a, D("100"), channel="cash", currency="JPY").amount == D("100")
    assert receive(session, a, D("1.125"), channel="cash", currency="KWD").amount == D("1.125")


@pytest.mark.parametrize("day", [date(1, 1, 1), date(1969, 12, 31), date(2999, 1, 1)])
def test_a_payment_date_out_of_the_window_is_refused(session, day):
    a = make_account(session)
    with pytest.raises(InvalidInput) as err:
        receive(session, a, D("10.00"), channel="cash", currency="INR", received_on=day)
    assert err.value.code == "payment.bad_date"


def test_a_payment_in_the_future_is_refused_and_receipt_numbers_stay_well_formed(session):
    a = make_account(session)
    today = utcnow().date()
    with pytest.raises(InvalidInput):
        receive(session, a, D("10.00"), channel="cash", currency="INR", received_on=today + timedelta(days=3))
    p = receive(session, a, D("10.00"), channel="cash", currency="INR", received_on=date(1999, 1, 2))
    assert p.receipt_number == "R-19990102-000001"
    with pytest.raises(InvalidInput):
        refund(session, a, D("1.00"), currency="INR", on=date(1, 1, 1))
    debit(session, a, "100.00", date(2026, 9, 1))
    with pytest.raises(InvalidInput):
        write_off(session, a, D("5.00"), on=date(1, 1, 1), currency="INR", reason="x")
    with pytest.raises(InvalidInput):
        promise_to_pay(session, a, D("5.00"), date(9999, 1, 1), "INR")


def test_a_small_recharge_on_a_negative_wallet_never_requests_a_disconnect(session):
    """A wallet 50-odd below zero on emergency credit: a 1.00 recharge leaves it negative. It
    must not cut the customer off, nor end the emergency credit the balance still relies on."""
    (acct,) = build_prepaid(session, n=1, kwh_per_slot=0.5)
    policy = PrepaidPolicy(
        quiet_from=0,
        quiet_until=0,
        sundays=False,
        holiday_country="",
        grace_hours=0,
        emergency_credit=D("2000"),
    )
    wallet = session.scalars(select(Wallet)).first()
    if wallet is None:
        run_daily(
            session,
            date(2026, 10, 1),
            tz=TZ,
            currency="INR",
            policy=ANYTIME,
            evaluate=False,
            usage=LocalUsage,
        )
        wallet = session.scalars(select(Wallet)).one()
    grant_emergency_credit(session, wallet.id, policy)
    for d in range(1, 4):
        run_daily(session, date(2026, 10, d), tz=TZ, currency="INR", policy=policy, usage=LocalUsage)
    assert wallet_balance(session, wallet) < -1
    assert session.scalar(select(func.count(MeterCommand.id))) == 0
    recharge_account(session, acct, D("1.00"), channel="cash", currency="INR", tz=TZ, policy=policy)
    assert wallet_balance(session, wallet) < 0
    assert session.scalar(select(func.count(MeterCommand.id))) == 0
    session.refresh(wallet)
    assert wallet.emergency_credit == D("2000")
