"""What a bill run posts to the ledger, on SQLite and PostgreSQL, through the real posting path.

Postpaid bills (whole-month and split at a load change) post one balanced entry each: the
customer's receivable debited with the bill's total, and each ledger account credited with the
bill's own lines on it. Prepaid statements post nothing: the prepaid engine charged the wallet
every day already.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import select

from conftest import attach_customer, make_meter
from meter2cash.cis.billing.models import Bill, BillLine
from meter2cash.cis.billing.run import run_bills
from meter2cash.cis.contracts.changes import change_load
from meter2cash.cis.ledger.journal import trial_balance
from meter2cash.cis.ledger.models import JournalLine
from meter2cash.cis.tariffs.loader import load_tariff_file, store_tariff
from meter2cash.mdm.models import Meter
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.usage.local import LocalUsage

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tariffs"
TZ = "Asia/Kolkata"
#: serial → (customer class, tariff, payment mode, sanctioned kW, mean kWh per 15 minutes)
FLEET = {
    "M-RES-SMALL": ("residential", "RES-LT1", "postpaid", "2", 0.01),
    "M-RES-LARGE": ("residential", "RES-LT1", "postpaid", "5", 0.4),
    "M-COM": ("commercial", "COM-TOU", "postpaid", "40", 3.0),
    "M-SPLIT": ("residential", "RES-LT1", "postpaid", "2", 0.2),
    "M-PP": ("residential", "RES-PP", "prepaid", "2", 0.1),
}


def build(session, seed: int) -> None:
    for name in ("res-lt1", "com-tou", "res-pp"):
        path = EXAMPLES / f"{name}.toml"
        store_tariff(session, load_tariff_file(path), path.read_text())
    rng = np.random.default_rng(seed)
    received, intervals = {}, {}
    start = datetime(2026, 10, 1, tzinfo=ZoneInfo(TZ)).astimezone(UTC).date()
    for serial, (cls, tariff, mode, kw, mean) in FLEET.items():
        channel = make_meter(session, serial)["kwh_import_15m"]
        meter_id = session.scalars(select(Meter.id).where(Meter.serial == serial)).one()
        attach_customer(
            session, meter_id, serial, cls,
            tariff_code=tariff, payment_mode=mode, sanctioned_load_kw=Decimal(kw),
        )  # fmt: skip
        for d in range(32):
            day = date.fromordinal(start.toordinal() + d)
            received[(channel, day)] = (np.arange(96), rng.uniform(0, 2 * mean, 96).round(3))
        intervals[channel] = 900
    MeasurementStore(session).merge(received, intervals)
    change_load(session, "SA-M-SPLIT", date(2026, 10, 11), "5", reason="load enhancement", by="test")
    session.commit()


@pytest.mark.parametrize("seed", [1, 2])
def test_every_bill_posts_what_its_lines_say(session, seed):
    build(session, seed)
    result = run_bills(session, "2026-10", tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    assert not result.errors
    bills = session.scalars(select(Bill).order_by(Bill.number)).all()
    assert len(bills) == len(FLEET)
    for bill in bills:
        lines = session.scalars(select(BillLine).where(BillLine.bill_id == bill.id)).all()
        assert sum(ln.amount for ln in lines) == bill.total > 0
        legs = session.scalars(select(JournalLine).where(JournalLine.account_id == bill.account_id)).all()
        if bill.kind == "prepaid":
            assert bill.journal_entry_id is None and legs == []  # charged daily, not by the bill
            continue
        assert bill.journal_entry_id is not None
        entry = session.scalars(
            select(JournalLine).where(JournalLine.entry_id == bill.journal_entry_id)
        ).all()
        assert sum(leg.amount for leg in entry) == 0
        assert [(leg.ledger_account, leg.amount) for leg in legs] == [("1100", bill.total)]
        credits: dict[str, Decimal] = defaultdict(Decimal)
        for ln in lines:
            credits[ln.ledger_account] -= ln.amount
        posted = {leg.ledger_account: leg.amount for leg in entry if leg.account_id is None}
        assert posted == {code: amount for code, amount in credits.items() if amount}
        assert posted.get("2200", Decimal(0)) == -bill.tax
    split = next(b for b in bills if b.account.number == "A-M-SPLIT")
    assert {ln.segment for ln in split.lines} == {1, 2}  # merged from its two segments
    assert trial_balance(session).total == 0
