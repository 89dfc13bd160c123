"""Ledger rules without a database: entry checks, and every bill posts a balanced entry."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meter2cash.cis.billing import bill_entry_legs
from meter2cash.cis.ledger import CHART, EntrySpec, _check
from meter2cash.cis.rating import RatingInput, rate_arrays
from meter2cash.cis.tariffs import load_tariff_file
from meter2cash.core.errors import InvalidInput

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tariffs"
VERSIONS = [load_tariff_file(EXAMPLES / f"{n}.toml").versions[0] for n in ("res-lt1", "com-tou", "res-pp")]


def spec(*legs) -> EntrySpec:
    return EntrySpec("test", date(2026, 10, 31), "REF", "", list(legs), "INR")


def test_balanced_entry_passes():
    _check(spec(("1100", Decimal("10.00"), 1), ("4100", Decimal("-10.00"), None)), set(CHART))


@pytest.mark.parametrize(
    ("legs", "code"),
    [
        ([("1100", Decimal("10.00"), 1), ("4100", Decimal("-9.99"), None)], "ledger.unbalanced"),
        ([("1100", Decimal("1"), 1), ("9999", Decimal("-1"), None)], "ledger.unknown_account"),
        ([("1100", 1.0, 1), ("4100", -1.0, None)], "ledger.not_decimal"),
        ([], "ledger.empty"),
    ],
)
def test_bad_entries_are_refused_with_a_code(legs, code):
    with pytest.raises(InvalidInput) as info:
        _check(spec(*legs), set(CHART))
    assert info.value.code == code


@settings(max_examples=80, deadline=None)
@given(
    which=st.integers(0, 2),
    wh=st.lists(st.integers(0, 3_000_000), min_size=3, max_size=3),
    demand=st.integers(0, 80_000),
    prepaid=st.booleans(),
)
def test_every_bill_posts_a_balanced_entry(which, wh, demand, prepaid):
    v = VERSIONS[which]
    p = len(v.period_names)
    inp = RatingInput(
        wh_by_period=np.array([wh[:p] if p > 1 else [sum(wh)]], dtype=np.int64),
        demand_w=np.array([demand]),
        sanctioned_w=np.array([5000]),
        days_in_period=np.array([30]),
        days_active=np.array([30]),
        prepaid=np.array([prepaid]),
    )
    bill = rate_arrays(v, inp).bill(0)
    legs = bill_entry_legs(bill, "prepaid" if prepaid else "postpaid", 7)
    assert sum(amount for _, amount, _ in legs) == 0
    _check(spec(*legs), set(CHART))
    debit = [leg for leg in legs if leg[2] == 7]
    assert debit == [("2100" if prepaid else "1100", bill.total, 7)]
    taxes = sum(-a for code, a, _ in legs if code == "2200")
    assert taxes == bill.tax
