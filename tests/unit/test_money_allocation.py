"""Allocation kernels: ordering policies and splitting a payment over open items."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meter2cash.cis.payments.allocation import OpenItem, order_items, split
from meter2cash.cis.reports.receivables import bucket_of
from meter2cash.core.errors import InvalidInput

D = Decimal


def item(eid: int, due_days: int, open_: str) -> OpenItem:
    due = date(2026, 1, 1) + timedelta(days=due_days)
    return OpenItem(eid, 1, "bill", f"B{eid}", due, due, None, D(open_), D(open_))


def test_policies_order():
    items = [item(1, 30, "50"), item(2, 0, "10"), item(3, 60, "99")]
    assert [i.entry_id for i in order_items(items, "oldest_first")] == [2, 1, 3]
    assert [i.entry_id for i in order_items(items, "newest_first")] == [3, 1, 2]
    assert [i.entry_id for i in order_items(items, "largest_first")] == [3, 1, 2]
    assert [i.entry_id for i in order_items(items, "oldest_first", first=[3])] == [3, 2, 1]
    with pytest.raises(InvalidInput):
        order_items(items, "whatever")


def test_partial_and_over_payment():
    items = [item(1, 0, "100.00"), item(2, 30, "50.00")]
    assert [(i and i.entry_id, a) for i, a in split(D("120.00"), items)] == [
        (1, D("100.00")),
        (2, D("20.00")),
    ]
    assert [(i and i.entry_id, a) for i, a in split(D("200.00"), items)] == [
        (1, D("100.00")),
        (2, D("50.00")),
        (None, D("50.00")),
    ]


@given(
    st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2),
    st.lists(st.decimals(min_value=D("0.01"), max_value=D("10000"), places=2), max_size=12),
)
def test_split_is_exact_and_never_over_settles(amount, opens):
    items = [item(k, k, str(o)) for k, o in enumerate(opens)]
    parts = split(amount, order_items(items, "oldest_first"))
    assert sum(a for _, a in parts) == amount
    for it, a in parts:
        assert a > 0
        if it is not None:
            assert a <= it.open
    unapplied = [a for it, a in parts if it is None]
    assert unapplied == ([amount - sum(opens)] if amount > sum(opens) else [])


def test_ageing_buckets():
    assert [bucket_of(d) for d in (0, 30, 31, 60, 61, 90, 91)] == [
        "0-30",
        "0-30",
        "31-60",
        "31-60",
        "61-90",
        "61-90",
        "90+",
    ]
