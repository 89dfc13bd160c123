"""Golden bills: a typical bill for each example tariff, rendered as text, against tests/golden/.

Hand calculations (INR):

RES-LT1, 250 kWh, 2 kW sanctioned, full month, postpaid (telescopic, rounding per line, half-up)
    fixed 50 + 2 kW × 20 = 40; energy 100 × 3.00 = 300.00, 150 × 4.50 = 675.00
    subtotal 1065.00; electricity duty 5 % of (energy + fixed) 1065.00 = 53.25; total 1118.25

COM-TOU, normal 400 / peak 150.5 / night 200 kWh (750.5 kWh), maximum demand 12.4 kW
    fixed 150.00; energy 500 × 7.00 = 3500.00, 250.5 × 8.25 = 2066.625 → 2066.63
    peak surcharge 150.5 × 1.50 = 225.75; night rebate 200 × −0.75 = −150.00
    demand 12.4 × 250 = 3100.00; subtotal 8892.38
    duty 6 % of 8892.38 = 533.5428 → 533.54; cess 0.5 % of (3500 + 2066.63 + 225.75 − 150)
    = 5642.38 → 28.2119 → 28.21; taxes 561.75; total 9454.13

RES-PP, 180.123 kWh, prepaid (non-telescopic, rounding per bill, half-even, 4 decimals per line)
    fixed 30.0000; all 180.123 kWh at slab 100–300: × 4.60 = 828.5658
    prepaid discount 180.123 × 0.25 = 45.03075 → −45.0308 (half-even)
    subtotal 813.5350; duty 5 % = 40.67675 → 40.6768; sum 854.2118 → total 854.21, rounding −0.0018

Set M2C_UPDATE_GOLDEN=1 to rewrite the files after a deliberate change (then check them by hand).
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from meter2cash.cis.documents import render_bill_text
from meter2cash.cis.rating import rate_one
from meter2cash.cis.tariffs import load_tariff_file

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"

CASES = {
    "res-lt1": ({"kwh_total": 250, "sanctioned_load_kw": 2, "days_in_period": 30}, "1118.25"),
    "com-tou": (
        {
            "kwh_by_period": {"normal": 400, "peak": "150.5", "night": 200},
            "max_demand_kw": "12.4",
            "sanctioned_load_kw": 20,
            "days_in_period": 31,
        },
        "9454.13",
    ),
    "res-pp": (
        {"kwh_total": "180.123", "prepaid": True, "sanctioned_load_kw": 1, "days_in_period": 31},
        "854.21",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_bill(name):
    determinants, total = CASES[name]
    bill = rate_one(
        load_tariff_file(ROOT / "examples" / "tariffs" / f"{name}.toml").versions[0], determinants
    )
    assert bill.total == Decimal(total)  # the hand calculation above
    text = render_bill_text(bill)
    path = GOLDEN / f"bill-{name}.txt"
    if os.environ.get("M2C_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")
