"""The daily prepaid charge from the usage port, with an in-memory usage source: no database.

Hand calculations (INR), RES-PP (non-telescopic slabs 0–100 at 3.10, 100–300 at 4.60; fixed 30 a
month prorated by the days charged; prepaid discount 0.25 per kWh; duty 5 % of energy, fixed and
discount; lines to 4 places half-even, the total to paise), October (31 days):
    1 October, 6 kWh: fixed 30 × 1/31 = 0.9677; energy 6 × 3.10 = 18.60; discount −1.50;
        subtotal 18.0677; duty 0.9034 (0.903385); total 18.9711 → 18.97. The month before: 0.
        Charge 18.97.
    2 October, 150 kWh more (156 kWh to date, all at 4.60): fixed 30 × 2/31 = 1.9355;
        energy 717.60; discount −39.00; subtotal 680.5355; duty 34.0268 (34.026775);
        total 714.5623 → 714.56. Minus the 18.97 of 1 October: charge 695.59.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from fakes import MemoryUsage, Usage
from meter2cash.cis.prepaid.daily_charge import WalletDay, charge_days
from meter2cash.cis.tariffs.loader import load_tariff_file
from meter2cash.core.timeutil import local_month_bounds
from meter2cash.mdm.usage.port import UsageQuery

TZ = "Asia/Kolkata"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tariffs"
VERSION = load_tariff_file(EXAMPLES / "res-pp.toml").versions[0]


def wallet(k: int, from_day: date, mtd_wh: list[int] | None = None, mtd_days: int = 0) -> WalletDay:
    return WalletDay(
        k, k, k, k, f"SP-{k}", "RES-PP", Decimal("2"), date(2026, 1, 1), None,
        mtd_wh=mtd_wh, mtd_days=mtd_days, from_day=from_day, to_day=from_day,
    )  # fmt: skip


def charges(wallets: list[WalletDay], usage: MemoryUsage, day: date) -> list[Decimal]:
    start, end = local_month_bounds("2026-10", TZ)
    query = UsageQuery(
        [w.sp_id for w in wallets], [w.sp_code for w in wallets], [w.from_day for w in wallets],
        [day] * len(wallets), start, end, TZ, VERSION.tou, VERSION.period_names, estimate_gaps=False,
    )  # fmt: skip
    (batch,) = usage.usage(query)
    result = charge_days(VERSION, batch.det, wallets, day, 31)
    return [Decimal(int(a)).scaleb(-result.scale) for a in result.amount]


def test_the_first_day_of_the_month_is_charged_its_share() -> None:
    amounts = charges(
        [wallet(1, date(2026, 10, 1))], MemoryUsage({"SP-1": Usage({"all": 6.0})}), date(2026, 10, 1)
    )
    assert amounts == [Decimal("18.97")]


def test_a_later_day_is_the_month_to_date_minus_what_was_charged_before() -> None:
    w = wallet(1, date(2026, 10, 2), mtd_wh=[6000], mtd_days=1)
    amounts = charges([w], MemoryUsage({"SP-1": Usage({"all": 150.0})}), date(2026, 10, 2))
    assert amounts == [Decimal("695.59")]


def test_the_two_days_add_up_to_the_month_to_date_rating() -> None:
    first = charges(
        [wallet(1, date(2026, 10, 1))], MemoryUsage({"SP-1": Usage({"all": 6.0})}), date(2026, 10, 1)
    )
    second = charges(
        [wallet(1, date(2026, 10, 2), mtd_wh=[6000], mtd_days=1)],
        MemoryUsage({"SP-1": Usage({"all": 150.0})}),
        date(2026, 10, 2),
    )
    assert first[0] + second[0] == Decimal("714.56")
