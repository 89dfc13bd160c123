"""Rating: slabs at their boundaries, demand, taxes, proration, rounding, and array properties."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meter2cash.cis.rating.rate import rate_arrays, rate_one
from meter2cash.cis.rating.scaled import div_round
from meter2cash.cis.rating.types import RatingInput
from meter2cash.cis.tariffs.loader import load_tariff_file, parse_tariff

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tariffs"
RES = load_tariff_file(EXAMPLES / "res-lt1.toml").versions[0]
COM = load_tariff_file(EXAMPLES / "com-tou.toml").versions[0]
PP = load_tariff_file(EXAMPLES / "res-pp.toml").versions[0]

SLABS = """
code = "S"
currency = "INR"
[[versions]]
effective_from = 2026-04-01
[versions.energy]
method = "{method}"
slabs = [{{ upto = "100", rate = "3" }}, {{ upto = "300", rate = "4.5" }}, {{ rate = "6.5" }}]
"""
TELE = parse_tariff(SLABS.format(method="telescopic")).versions[0]
FLAT = parse_tariff(SLABS.format(method="non_telescopic")).versions[0]


def energy(version, kwh) -> Decimal:
    return sum(
        (ln.amount for ln in rate_one(version, {"kwh_total": kwh}).lines if ln.component == "energy"),
        Decimal(0),
    )


@pytest.mark.parametrize(
    ("kwh", "telescopic", "flat"),
    [
        ("0", "0.00", "0.00"),
        ("100", "300.00", "300.00"),  # 100 × 3
        (
            "100.001",
            "300.00",
            "450.00",
        ),  # 300 + 0.001 × 4.5 = 300.0045 → 300.00; flat 100.001 × 4.5 = 450.0045
        ("300", "1200.00", "1350.00"),  # 300 + 200 × 4.5; flat 300 × 4.5
        ("301", "1206.50", "1956.50"),  # 1200 + 6.5; flat 301 × 6.5
    ],
)
def test_slab_boundaries(kwh, telescopic, flat):
    assert energy(TELE, kwh) == Decimal(telescopic)
    assert energy(FLAT, kwh) == Decimal(flat)


def test_flat_slab_line_names_the_reached_slab():
    line = next(ln for ln in rate_one(FLAT, {"kwh_total": "150"}).lines if ln.component == "energy")
    assert line.description == "Energy, all units at slab 100–300 kWh" and line.rate == Decimal("4.5")


def test_demand_taxes_and_tou_on_the_commercial_tariff():
    b = rate_one(COM, {"kwh_by_period": {"normal": 300, "peak": 100, "night": 100}, "max_demand_kw": "10.25"})
    by = {ln.description: ln.amount for ln in b.lines}
    assert by["Demand charge on maximum demand"] == Decimal("2562.50")  # 10.25 kW × 250
    assert by["ToD peak surcharge"] == Decimal("150.00") and by["ToD night rebate"] == Decimal("-75.00")
    # ED 6 % on 150 + 3500 + 150 − 75 + 2562.50 = 6287.50 → 377.25; cess 0.5 % on 3575 → 17.875 → 17.88
    assert by["Electricity duty 6% on energy, tou, demand, fixed"] == Decimal("377.25")
    assert by["Green energy cess 0.5% on energy, tou"] == Decimal("17.88")
    assert b.total == Decimal("6682.63")


def test_demand_floor_share_of_sanctioned_load():
    v = COM.model_copy(update={"demand": COM.demand.model_copy(update={"floor_percent": Decimal("75")})})
    b = rate_one(v, {"kwh_total": 0, "max_demand_kw": 4, "sanctioned_load_kw": 20})
    demand = next(ln for ln in b.lines if ln.component == "demand")
    assert demand.quantity == Decimal("15.000") and demand.amount == Decimal("3750.00")


def test_fixed_charges_prorate_by_days():
    b = rate_one(RES, {"kwh_total": 0, "sanctioned_load_kw": "3", "days_in_period": 31, "days_active": 10})
    fixed = [ln for ln in b.lines if ln.component == "fixed"]
    # 50 × 10/31 = 16.129 → 16.13; 3 kW × 20 × 10/31 = 19.354 → 19.35
    assert [ln.amount for ln in fixed] == [Decimal("16.13"), Decimal("19.35")]
    assert fixed[0].description == "Fixed charge (10/31 days)"


def test_prepaid_discount_only_for_prepaid_and_bill_level_rounding():
    post = rate_one(PP, {"kwh_total": "100.001"})
    pre = rate_one(PP, {"kwh_total": "100.001", "prepaid": True})
    assert not any(ln.component == "prepaid_discount" for ln in post.lines)
    disc = next(ln for ln in pre.lines if ln.component == "prepaid_discount")
    assert disc.amount == Decimal("-25.0002") and disc.ledger_account == "4900"  # 25.00025 half-even
    rounding = next(ln for ln in pre.lines if ln.component == "rounding")
    assert rounding.amount == Decimal("-0.0046") and pre.total == Decimal("488.25")


def test_div_round_modes():
    n = np.array([5, 15, 25, -5, -15, 14, 16])
    assert div_round(n, 10, "half_up").tolist() == [1, 2, 3, -1, -2, 1, 2]
    assert div_round(n, 10, "half_even").tolist() == [0, 2, 2, 0, -2, 1, 2]
    assert div_round(n, np.full(7, 10), "half_up").tolist() == [1, 2, 3, -1, -2, 1, 2]


def test_unknown_period_in_determinants_is_refused():
    with pytest.raises(ValueError, match="unknown TOU periods"):
        rate_one(COM, {"kwh_by_period": {"offpeak": 1}})


def fleet(n_periods: int) -> st.SearchStrategy:
    return st.lists(
        st.tuples(
            st.lists(st.integers(0, 2_000_000), min_size=n_periods, max_size=n_periods),
            st.integers(0, 100_000),
            st.integers(0, 50_000),
            st.integers(1, 31),
            st.booleans(),
        ),
        min_size=1,
        max_size=20,
    )


def as_input(rows, days_in=31) -> RatingInput:
    return RatingInput(
        wh_by_period=np.array([r[0] for r in rows], dtype=np.int64),
        demand_w=np.array([r[1] for r in rows], dtype=np.int64),
        sanctioned_w=np.array([r[2] for r in rows], dtype=np.int64),
        days_in_period=np.full(len(rows), days_in, dtype=np.int64),
        days_active=np.array([r[3] for r in rows], dtype=np.int64),
        prepaid=np.array([r[4] for r in rows]),
    )


@settings(max_examples=60, deadline=None)
@given(rows=fleet(3), which=st.sampled_from(["com", "res", "pp"]))
def test_array_rating_equals_each_bill_alone_and_totals_add_up(rows, which):
    version = {"com": COM, "res": RES, "pp": PP}[which]
    if len(version.period_names) == 1:
        rows = [([sum(r[0])], *r[1:]) for r in rows]
    bills = rate_arrays(version, as_input(rows)).bills()
    for row, bill in zip(rows, bills, strict=True):
        alone = rate_arrays(version, as_input([row])).bill(0)
        assert alone == bill
        assert bill.total == sum(ln.amount for ln in bill.lines)
        assert bill.subtotal + bill.tax == sum(ln.amount for ln in bill.lines if ln.component != "rounding")


@settings(max_examples=100, deadline=None)
@given(a=st.integers(0, 5_000_000), b=st.integers(0, 5_000_000))
def test_telescopic_energy_charge_is_monotonic(a, b):
    lo, hi = sorted((a, b))
    charges = [energy(TELE, Decimal(x).scaleb(-3)) for x in (lo, hi)]
    assert charges[0] <= charges[1]


@given(
    st.lists(
        st.lists(st.floats(0, 5000, allow_nan=False), min_size=1, max_size=5).map(
            lambda r: [*r, *([0.0] * (5 - len(r)))]
        ),
        min_size=1,
        max_size=20,
    )
)
def test_split_wh_adds_up_to_the_rounded_total(rows):
    from meter2cash.cis.rating.types import split_wh

    kwh = np.array(rows)
    wh = split_wh(kwh)
    np.testing.assert_array_equal(wh.sum(axis=1), np.rint(kwh.sum(axis=1) * 1000).astype(np.int64))
    exact = kwh * 1000
    assert ((wh >= np.floor(exact) - 1e-9) & (wh <= np.floor(exact) + 1)).all()
