"""A segment of a split bill prorates demand charges by its days; other bills do not."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from meter2cash.cis.rating.rate import rate_arrays
from meter2cash.cis.rating.types import RatingInput
from meter2cash.cis.tariffs.loader import load_tariff_file

COM_TOU = load_tariff_file(Path(__file__).resolve().parents[2] / "examples" / "tariffs" / "com-tou.toml")


def demand_lines(prorate: bool, days_active: int) -> list[tuple[str, Decimal]]:
    inp = RatingInput.from_kwh(
        [[400, 150.5, 200]], [12.4], [20], 31, [days_active], kwh_total=[750.5], prorate_demand=prorate
    )
    (bill,) = rate_arrays(COM_TOU.versions[0], inp).bills()
    return [(ln.description, ln.amount) for ln in bill.lines if ln.component == "demand"]


def test_a_segment_charges_demand_for_its_days():
    # 12.4 kW × 250 INR/kW × 10/31 days = 1000.00
    assert demand_lines(True, 10) == [("Demand charge on maximum demand (10/31 days)", Decimal("1000.00"))]


def test_a_bill_of_part_of_a_period_without_a_split_charges_the_month_s_demand():
    assert demand_lines(False, 10) == [("Demand charge on maximum demand", Decimal("3100.00"))]
    assert (
        demand_lines(True, 31)
        == demand_lines(False, 31)
        == [("Demand charge on maximum demand", Decimal("3100.00"))]
    )
