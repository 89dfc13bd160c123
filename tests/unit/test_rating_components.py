"""Rating of the tariff components beyond slabs: per-day and contract-demand fixed charges, slab
tables, TOU slab rates, billing demand, kVAh, power factor, minimum, fuel, net metering, terms."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meter2cash.cis.rating.rate import rate_arrays, rate_one
from meter2cash.cis.rating.types import RatingInput
from meter2cash.cis.tariffs.loader import TariffFileError, load_tariff_file, parse_tariff

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tariffs"
IND = load_tariff_file(EXAMPLES / "ind-kvah.toml").versions[0]
NM = load_tariff_file(EXAMPLES / "res-nm.toml").versions[0]
D = Decimal

HEAD = """
code = "T"
currency = "INR"
[[versions]]
effective_from = 2026-04-01
"""


def tariff(body: str):
    return parse_tariff(HEAD + body).versions[0]


def amounts(bill, component=None) -> dict[str, Decimal]:
    return {ln.description: ln.amount for ln in bill.lines if component in (None, ln.component)}


def test_fixed_per_day_and_per_kva_of_contract_demand_prorate():
    v = tariff(
        '[versions.fixed]\nper_day = "10"\nper_kva_month = "350"\n[versions.energy]\nslabs=[{rate="1"}]'
    )
    b = rate_one(v, {"kwh_total": 0, "contract_demand_kva": 400, "days_in_period": 31, "days_active": 10})
    by = amounts(b, "fixed")
    assert by["Fixed charge per day of supply"] == D("100.00")  # 10 days × 10
    # 400 kVA × 350 × 10/31 = 45161.2903 → 45161.29
    assert by["Fixed charge on contract demand (10/31 days)"] == D("45161.29")


SLAB_TABLES = """
[versions.energy]
tables = [
  { upto = "100", slabs = [{ upto = "50", rate = "1.50" }, { rate = "2.50" }] },
  { slabs = [{ upto = "200", rate = "4.00" }, { rate = "5.00" }] },
]
"""


@pytest.mark.parametrize(
    ("kwh", "expected"),
    [("100", "200.00"), ("100.001", "400.00"), ("250", "1050.00")],  # 75+125; 100.001×4; 800+250
)
def test_slab_table_chosen_by_total_consumption(kwh, expected):
    b = rate_one(tariff(SLAB_TABLES), {"kwh_total": kwh})
    assert sum(amounts(b, "energy").values()) == D(expected)


def test_bimonthly_doubles_slab_limits_and_monthly_charges():
    v = tariff('[versions.fixed]\nper_month = "50"\n' + SLAB_TABLES.replace("tables", "tables"))
    b = rate_one(v, {"kwh_total": "200", "months": 2, "days_in_period": 61})
    by = amounts(b)
    assert by["Fixed charge"] == D("100.00")
    # limits × 2: table 1 up to 200 kWh: 100 × 1.5 + 100 × 2.5
    assert by["Energy table 1, 0–50 kWh"] == D("150.00") and by["Energy table 1, above 50 kWh"] == D("250.00")


def test_prorated_slab_limits_follow_active_days():
    v = tariff('[versions.energy]\nprorate_slabs = true\nslabs = [{upto="100",rate="3"},{rate="6"}]')
    b = rate_one(v, {"kwh_total": "100", "days_in_period": 30, "days_active": 15})
    assert amounts(b, "energy") == {"Energy 0–100 kWh": D("150.00"), "Energy above 100 kWh": D("300.00")}


TOU_SLABS = """
[rounding]
level = "bill"
[versions.energy]
slabs = [{ upto = "100", rate = "0.10" }, { rate = "0.20" }]
[versions.tou]
tier_split = "{split}"
periods = [{ name = "peak", start = "16:00", end = "21:00", slab_rates = ["0.30", "0.40"] }]
"""


def test_tou_slab_rates_proportional_split_as_sam():
    v = tariff(TOU_SLABS.replace("{split}", "proportional"))
    b = rate_one(v, {"kwh_by_period": {"normal": 150, "peak": 50}})
    # 200 kWh: tier 1 = 100 (¾ normal, ¼ peak), tier 2 = 100 split alike
    # 75×0.1 + 25×0.3 + 75×0.2 + 25×0.4 = 7.5 + 7.5 + 15 + 10 = 40
    assert b.total == D("40.00")


def test_tou_slab_rates_per_period_split():
    v = tariff(TOU_SLABS.replace("{split}", "per_period"))
    b = rate_one(v, {"kwh_by_period": {"normal": 150, "peak": 50}})
    # normal 100×0.1 + 50×0.2 = 20; peak 50×0.3 = 15
    assert b.total == D("35.00")


def test_tou_slab_rates_need_one_rate_per_slab():
    with pytest.raises(TariffFileError, match="one rate per energy slab"):
        tariff(TOU_SLABS.replace("{split}", "proportional").replace('"0.30", "0.40"', '"0.30"'))


IND_DET = {
    "kwh_by_period": {"normal": 40000, "peak": 10000, "night": 20000},
    "kvah_total": "82352.941",
    "max_demand_kw": "250",
    "max_demand_kw_by_period": {"peak": "240"},
    "contract_demand_kva": 400,
    "ratchet_demand_kw": "380",
    "period": "2026-10",
    "days_in_period": 31,
}


def test_kvah_billing_pf_penalty_fuel_and_billing_demand():
    b = rate_one(IND, IND_DET)
    by = amounts(b)
    # kVAh 82352.941 billed: 50000 × 6.80 + 32352.941 × 6.50 = 340000 + 210294.12
    assert by["Energy 0–50000 kVAh"] == D("340000.00")
    assert by["Energy above 50000 kVAh"] == D("210294.12")
    # billing demand = max(250, 75 % of 400 = 300, 85 % of 380 = 323) = 323 kW × 300
    assert by["Demand charge on billing demand"] == D("96900.00")
    assert by["Demand charge, peak maximum demand"] == D("28800.00")
    # fuel adjustment of October on kVAh: 82352.941 × 0.35 = 28823.53
    assert by["Fuel and power purchase cost adjustment 2026-10"] == D("28823.53")
    # PF = 70000 / 82352.941 = 0.85: 5 steps below 0.90 → 5 % of energy + tou
    pen = next(ln for ln in b.lines if ln.component == "power_factor")
    assert pen.quantity == D("0.850") and pen.rate == D(5)
    energy_tou = sum(ln.amount for ln in b.lines if ln.component in ("energy", "tou"))
    assert pen.amount == (energy_tou * D("0.05")).quantize(D("0.01"))


def test_pf_incentive_above_threshold_and_no_fuel_in_an_unlisted_month():
    det = {**IND_DET, "kvah_total": "70707.070", "period": "2026-12"}  # PF 0.99
    b = rate_one(IND, det)
    pf = next(ln for ln in b.lines if ln.component == "power_factor")
    assert pf.amount < 0 and pf.rate == D("-2") and "incentive 2%" in pf.description  # 4 steps × 0.5
    assert not any(ln.component == "fuel" for ln in b.lines)


def test_minimum_charge_tops_up_and_payment_terms_are_printed():
    b = rate_one(IND, {"kwh_total": 0, "kvah_total": 0, "days_in_period": 30})
    by = amounts(b)
    # fixed per day 30 × 10 = 300; nothing else; minimum 25000 → top-up 24700
    assert by["Minimum charge top-up"] == D("24700.00")
    assert b.terms["prompt_payment_rebate"] == "250.00" and b.terms["late_payment_surcharge"] == "375.00"


def test_net_energy_banks_surplus_and_true_up_pays_it():
    oct_ = rate_one(NM, {"kwh_total": 250, "kwh_export": 320, "banked_kwh": 10, "period": "2026-10"})
    assert oct_.terms["banked_kwh"] == "80.000" and amounts(oct_)["Minimum charge top-up"] == D("40.00")
    mar = rate_one(NM, {"kwh_total": 250, "kwh_export": 320, "banked_kwh": 40, "period": "2027-03"})
    assert amounts(mar)["Annual true-up: banked export paid out"] == D("-247.50")  # 110 kWh × 2.25
    assert mar.terms["banked_kwh"] == "0.000"
    partial = rate_one(NM, {"kwh_total": 250, "kwh_export": 120, "banked_kwh": 40, "period": "2026-11"})
    assert amounts(partial)["Energy 0–100 kWh"] == D("270.00")  # 250 − 120 − 40 = 90 kWh


def test_net_billing_credits_every_export():
    v = NM.model_copy(update={"net_metering": NM.net_metering.model_copy(update={"mode": "net_billing"})})
    b = rate_one(v, {"kwh_total": 250, "kwh_export": 100})
    assert amounts(b)["Export credit"] == D("-225.00")
    assert amounts(b)["Energy 100–300 kWh"] == D("675.00")  # imports bill in full: 150 × 4.5


def test_holiday_dates_and_unknown_fields_are_validated():
    with pytest.raises(TariffFileError, match="unknown field"):
        tariff('[versions.energy]\nslabs=[{rate="1"}]\n[versions.net_metering]\nexport_rat = "1"')
    with pytest.raises(TariffFileError, match="YYYY-MM"):
        tariff('[versions.energy]\nslabs=[{rate="1"}]\n[versions.fuel_adjustment]\nper_kwh={"2026-13"="1"}')


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.lists(st.integers(0, 5_000_000), min_size=3, max_size=3),
            st.integers(0, 6_000_000),
            st.integers(0, 400_000),
            st.integers(0, 400_000),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_industrial_array_equals_each_bill_alone_and_lines_add_up(rows):
    def inp(rs) -> RatingInput:
        n = len(rs)
        wh = np.array([r[0] for r in rs], dtype=np.int64)
        return RatingInput(
            wh_by_period=wh,
            demand_w=np.array([r[2] for r in rs], dtype=np.int64),
            sanctioned_w=np.zeros(n, np.int64),
            days_in_period=np.full(n, 31, np.int64),
            days_active=np.full(n, 31, np.int64),
            prepaid=np.zeros(n, bool),
            kvah_vah=wh.sum(axis=1) + np.array([r[1] for r in rs], dtype=np.int64),
            demand_w_by_period=np.array([[0, r[3], 0] for r in rs], dtype=np.int64),
            contract_va=np.full(n, 400_000, np.int64),
            ratchet_w=np.array([r[3] for r in rs], dtype=np.int64),
            period="2026-10",
        )

    bills = rate_arrays(IND, inp(rows)).bills()
    for row, bill in zip(rows, bills, strict=True):
        assert bill == rate_arrays(IND, inp([row])).bill(0)
        assert sum(ln.amount for ln in bill.lines) == bill.total


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.lists(st.integers(0, 2_000_000), min_size=3, max_size=3),
            st.integers(0, 60_000),
            st.integers(1, 31),
        ),
        min_size=1,
        max_size=15,
    )
)
def test_line_rows_from_arrays_equal_the_decimal_bills(rows):
    from meter2cash.cis.rating.lines import LINE_FIELDS, line_rows

    com = load_tariff_file(EXAMPLES / "com-tou.toml").versions[0]
    n = len(rows)
    inp = RatingInput(
        wh_by_period=np.array([r[0] for r in rows], dtype=np.int64),
        demand_w=np.array([r[1] for r in rows], dtype=np.int64),
        sanctioned_w=np.full(n, 20_000, np.int64),
        days_in_period=np.full(n, 31, np.int64),
        days_active=np.array([r[2] for r in rows], dtype=np.int64),
        prepaid=np.zeros(n, bool),
    )
    rated = rate_arrays(com, inp)
    got = [dict(zip(LINE_FIELDS, r, strict=True)) for r in line_rows(rated, [100 + i for i in range(n)])]
    want = [
        {"bill_id": 100 + i, "seq": s + 1, "component": ln.component, "description": ln.description,
         "quantity": ln.quantity, "unit": ln.unit, "rate": ln.rate, "amount": ln.amount,
         "ledger_account": ln.ledger_account, "segment": 1}
        for i, b in enumerate(rated.bills())
        for s, ln in enumerate(b.lines)
    ]  # fmt: skip
    assert got == want
    raw = line_rows(rated, [100 + i for i in range(n)], stored=True)
    assert [r[7] for r in raw] == [int(w["amount"].scaleb(4)) for w in want]
    assert [r[4] for r in raw] == [
        None if w["quantity"] is None else int(w["quantity"].scaleb(3)) for w in want
    ]
