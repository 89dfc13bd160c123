from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meter2cash.core.errors import InvalidInput, Problem
from meter2cash.core.money import minor_to_decimal, round_half_up_int, round_money, to_decimal
from meter2cash.core.quality import Quality, describe
from meter2cash.core.timeutil import (
    ensure_aware,
    local_frame,
    local_month_bounds,
    slots_per_day,
    utc_days,
)


def test_round_money_half_up_and_half_even():
    assert round_money(Decimal("2.345")) == Decimal("2.35")
    assert round_money(Decimal("2.345"), mode="half_even") == Decimal("2.34")
    assert round_money(Decimal("-2.345")) == Decimal("-2.35")
    assert round_money(Decimal("10.5"), "JPY") == Decimal("11")


def test_to_decimal_refuses_floats():
    assert to_decimal("3.10") == Decimal("3.10")
    assert to_decimal(7) == Decimal(7)
    with pytest.raises(TypeError, match="quote it"):
        to_decimal(0.1)


@given(
    st.lists(st.integers(-(10**15), 10**15), min_size=1, max_size=50),
    st.sampled_from([10, 100, 1000, 10_000]),
)
def test_integer_rounding_matches_decimal_half_up(numers, scale):
    got = round_half_up_int(np.array(numers, dtype=np.int64), scale)
    want = [int((Decimal(n) / scale).quantize(Decimal(1), rounding="ROUND_HALF_UP")) for n in numers]
    assert got.tolist() == want


def test_minor_units_to_decimal():
    assert minor_to_decimal(12345, "INR") == Decimal("123.45")
    assert minor_to_decimal(-5, "JPY") == Decimal("-5")


def test_quality_flags_describe():
    assert describe(0) == "VALID"
    assert describe(Quality.SUSPECT | Quality.ESTIMATED) == "ESTIMATED|SUSPECT"


def test_problem_reads_like_a_compiler_message():
    p = Problem(
        code="ingest.bad_value", message="'abc' is not a number", line=7, field="value", source="a.csv"
    )
    assert str(p) == "a.csv:7 [value] ingest.bad_value: 'abc' is not a number"
    assert p.to_dict()["line"] == 7
    err = InvalidInput("bad", code="x.y", field="f")
    assert err.to_dict() == {"code": "x.y", "message": "bad", "data": {"field": "f"}}


def test_naive_timestamps_are_refused():
    with pytest.raises(ValueError, match="no time zone"):
        ensure_aware(datetime(2026, 1, 1))
    ist = timezone(timedelta(hours=5, minutes=30))
    assert ensure_aware(datetime(2026, 1, 1, 5, 30, tzinfo=ist)) == datetime(2026, 1, 1, tzinfo=UTC)


def test_slot_grid():
    assert slots_per_day(900) == 96
    assert slots_per_day(1800) == 48
    with pytest.raises(ValueError):
        slots_per_day(7 * 60)


def test_utc_days_of_a_window():
    days = utc_days(datetime(2026, 9, 30, 18, 30, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC))
    assert days == [date(2026, 9, 30), date(2026, 10, 1)]
    assert utc_days(datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)) == []


def test_local_month_bounds_in_india_and_across_dst():
    start, end = local_month_bounds("2026-09", "Asia/Kolkata")
    assert start == datetime(2026, 8, 31, 18, 30, tzinfo=UTC)
    assert end == datetime(2026, 9, 30, 18, 30, tzinfo=UTC)
    start, end = local_month_bounds("2026-03", "Europe/London")  # BST starts 29 March
    assert (end - start) == timedelta(days=31) - timedelta(hours=1)
    with pytest.raises(InvalidInput, match="YYYY-MM"):
        local_month_bounds("2026/03", "UTC")


def test_local_frame_handles_the_dst_day():
    # 2026-03-29 in London has 23 hours: 92 quarter hours.
    start = int(datetime(2026, 3, 29, 0, tzinfo=UTC).timestamp())
    epoch = start + np.arange(0, 92 * 900, 900, dtype=np.int64)
    frame = local_frame(epoch, "Europe/London")
    assert frame["minute_of_day"].iloc[4] == 120  # 01:00 UTC is 02:00 BST
    assert (frame["weekday"] == 6).all()
    assert frame["date"].nunique() == 1


def test_gc_is_paused_inside_and_restored_after_even_on_error():
    import gc

    from meter2cash.core.gcpause import gc_paused

    @gc_paused()
    def work(fail: bool) -> bool:
        with gc_paused():
            pass
        if fail:
            raise RuntimeError("boom")
        return gc.isenabled()

    assert gc.isenabled()
    assert work(False) is False
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        work(True)
    assert gc.isenabled()
    gc.disable()
    try:
        work(False)
        assert not gc.isenabled()  # a caller's own pause is kept
    finally:
        gc.enable()
