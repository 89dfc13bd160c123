"""Ledger rules without a database: the checks every entry passes before it is posted.

What a bill run posts is tested on the real posting path in tests/integration/test_bill_posting.py.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from meter2cash.cis.ledger.journal import CHART, EntrySpec, _check
from meter2cash.core.errors import InvalidInput


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
