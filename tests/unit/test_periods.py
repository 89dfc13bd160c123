"""The one parser of billing periods ``YYYY-MM`` (``core.timeutil.parse_month``)."""

from __future__ import annotations

from datetime import date

import pytest

from meter2cash.core.errors import InvalidInput
from meter2cash.core.timeutil import parse_month


@pytest.mark.parametrize(("text", "first"), [("2026-10", date(2026, 10, 1)), ("1970-01", date(1970, 1, 1)),
                                             ("2199-12", date(2199, 12, 1))])  # fmt: skip
def test_a_month_is_its_first_day(text, first):
    assert parse_month(text) == first


@pytest.mark.parametrize(
    "text", ["2026-13", "2026-00", "2026-1", "26-10", "2026/10", " 2026-10", "2026-10-01", "0000-01",
             "1969-12", "2200-01", "２０２６-10", "", None, 202610],
)  # fmt: skip
def test_anything_else_is_period_invalid(text):
    with pytest.raises(InvalidInput) as err:
        parse_month(text, "--period")
    assert err.value.code == "period.invalid" and "--period" in err.value.message
