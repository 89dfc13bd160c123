"""The one parser of billing periods ``YYYY-MM`` (``core.timeutil.parse_month``) and the one set
of month helpers (``core.timeutil``)."""

from __future__ import annotations

import calendar
from datetime import date

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meter2cash.core.errors import InvalidInput
from meter2cash.core.timeutil import (
    FIRST_DATE,
    LAST_DATE,
    add_months,
    days_in_month,
    month_code,
    month_end,
    month_start,
    next_month_start,
    parse_month,
)


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


# --- month arithmetic (core.timeutil), against pandas' monthly Period and the calendar module ---

DAYS = st.dates(min_value=FIRST_DATE, max_value=LAST_DATE)
STEPS = st.integers(-1200, 1200)


def test_month_arithmetic_by_hand():
    assert add_months("2026-11", 2) == "2027-01"
    assert add_months("2026-01", -1) == "2025-12"
    assert add_months("2026-10", 0) == "2026-10"
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)  # leap year
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)
    assert add_months(date(2026, 12, 15), 1) == date(2027, 1, 15)
    assert next_month_start(date(2026, 12, 31)) == date(2027, 1, 1)
    assert month_end(date(2100, 2, 1)) == date(2100, 2, 28)  # a century not divisible by 400
    assert month_end(date(2000, 2, 1)) == date(2000, 2, 29)
    assert days_in_month(date(2026, 4, 30)) == 30
    assert month_code(date(1970, 1, 1)) == "1970-01"


@given(DAYS, STEPS)
def test_add_months_to_a_code_is_a_monthly_period_moved(day, k):
    code = f"{day:%Y-%m}"
    assert add_months(code, k) == str(pd.Period(code, freq="M") + k)


@given(DAYS, STEPS)
def test_add_months_to_a_date_keeps_the_day_or_takes_the_months_last(day, k):
    index = day.year * 12 + day.month - 1 + k
    year, month = divmod(index, 12)
    month += 1
    expected = date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
    assert add_months(day, k) == expected


@given(DAYS)
def test_month_bounds_and_length_match_the_calendar(day):
    period = pd.Period(day, freq="M")
    assert month_code(day) == str(period)
    assert month_start(day) == period.start_time.date()
    assert month_end(day) == period.end_time.date()
    assert days_in_month(day) == calendar.monthrange(day.year, day.month)[1] == period.days_in_month
    assert next_month_start(day) == (period + 1).start_time.date()


@given(DAYS)
def test_a_month_code_parses_back_to_its_first_day(day):
    assert parse_month(month_code(day)) == day.replace(day=1)


def test_a_malformed_code_is_refused():
    for code in ("2026-13", "2026-1", "2026/10", ""):
        with pytest.raises(ValueError):
            add_months(code, 1)
