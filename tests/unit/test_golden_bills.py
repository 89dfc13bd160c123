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

IND-KVAH, kWh normal 30000 / peak 8000 / night 12000 (50000 kWh), 57471.264 kVAh, November 2026
    (kVAh billing, 30 days, contract 400 kVA, maximum demand 310 kW, 290 kW in the peak, ratchet 380 kW)
    fixed 30 days × 10 = 300.00; 400 kVA × 350 = 140000.00
    energy on kVAh: 50000 × 6.80 = 340000.00; 7471.264 × 6.50 = 48563.216 → 48563.22
    kVAh shared over periods like kWh: peak 8000/50000 × 57471.264 = 9195.402 × 1.00 = 9195.40;
    night 13793.103 × −0.50 = −6896.5515 → −6896.55
    billing demand max(310, 75 % × 400 = 300, 85 % × 380 = 323) = 323 × 300 = 96900.00; peak 290 × 120 = 34800
    fuel adjustment 2026-11: 57471.264 × 0.41 = 23563.218 → 23563.22
    PF 50000 / 57471.264 = 0.870: 3 steps below 0.90 → 3 % of (energy + tou) 390862.07 = 11725.86
    subtotal 698151.15; duty 9 % of (390862.07 + 23563.22 + 11725.86) = 38353.6035 → 38353.60
    total 736504.75; prompt-payment rebate 1 % = 7365.05; late-payment surcharge 1.5 % = 11047.57

RES-NM, import 412.5 kWh, export 268.25 kWh, 35.5 kWh banked from earlier months, October 2026
    billed 412.5 − 268.25 − 35.5 = 108.75 kWh: 100 × 3.00 = 300.00; 8.75 × 4.50 = 39.375 → 39.38
    fixed 60.00; minimum 100 not reached; duty 5 % of 399.38 = 19.969 → 19.97; total 419.35; bank 0

Set M2C_UPDATE_GOLDEN=1 to rewrite the files after a deliberate change (then check them by hand).
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from meter2cash.cis.billing.documents import render_bill_text
from meter2cash.cis.rating.rate import rate_one
from meter2cash.cis.tariffs.loader import load_tariff_file

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
    "ind-kvah": (
        {
            "kwh_by_period": {"normal": 30000, "peak": 8000, "night": 12000},
            "kvah_total": "57471.264",
            "max_demand_kw": 310,
            "max_demand_kw_by_period": {"normal": 310, "peak": 290, "night": 150},
            "contract_demand_kva": 400,
            "ratchet_demand_kw": 380,
            "period": "2026-11",
            "days_in_period": 30,
        },
        "736504.75",
    ),
    "res-nm": (
        {
            "kwh_total": "412.5",
            "kwh_export": "268.25",
            "banked_kwh": "35.5",
            "period": "2026-10",
            "days_in_period": 31,
        },
        "419.35",
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
