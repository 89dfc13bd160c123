"""Prepaid policy kernels: alert thresholds and crossings, the disconnection window."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import holidays
import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from meter2cash.cis.prepaid.policy import (
    PrepaidPolicy,
    alert_levels,
    alerts_to_fire,
    disconnect_allowed,
    threshold_matrix,
)

TZ = "Asia/Kolkata"
IN_HOLIDAYS = holidays.country_holidays("IN", years=range(2025, 2029))


def ts(y, m, d, hh, mm=0) -> int:
    return int(datetime(y, m, d, hh, mm, tzinfo=ZoneInfo(TZ)).timestamp())


def test_thresholds_percent_of_last_recharge_and_absolute():
    m = threshold_matrix(np.array([1_000_000, 0], dtype=np.int64), ("30%", "50", "10%", "0%"))
    # 100.00 recharged: 30% = 30.00, 10% = 10.00; absolute 50.00; sorted highest first
    assert m.tolist() == [[500_000, 300_000, 100_000, 0], [500_000, 0, 0, 0]]


def test_levels_and_firing_once():
    thr = threshold_matrix(np.array([1_000_000]), ("30%", "10%", "0%"))
    assert alert_levels(np.array([400_000]), thr).tolist() == [-1]
    assert alert_levels(np.array([300_000]), thr).tolist() == [0]
    assert alert_levels(np.array([-1]), thr).tolist() == [2]
    level, fire = alerts_to_fire(np.array([50_000]), thr, np.array([0]))
    assert level.tolist() == [1] and fire.tolist() == [True]
    level, fire = alerts_to_fire(np.array([40_000]), thr, np.array([1]))
    assert fire.tolist() == [False]


#: 30 %, 10 % and 0 % of a 100.00 recharge [10⁻⁴ currency], worked out by hand
HAND_THRESHOLDS = (300_000, 100_000, 0)


@given(st.lists(st.integers(-200_000, 1_200_000), min_size=1, max_size=60))
@example([300_000, 100_000, 0])  # exactly at each threshold: each alerts
@example([50_000, 150_000, 100_000, 400_000, 0])  # a rise above 10 % re-arms it, above 30 % both
def test_each_downward_crossing_fires_exactly_once(balances):
    """Over any balance path, an alert fires when the balance falls to or below a threshold that has
    not alerted since the balance was last above it (a rise above a threshold re-arms it)."""
    thr = threshold_matrix(np.array([1_000_000]), ("30%", "10%", "0%"))
    assert thr.tolist() == [list(HAND_THRESHOLDS)]
    fired_level = -1
    fired, expected = [], []
    alerted: set[int] = set()  # thresholds at or above the balance that have alerted already
    for b in balances:
        level, fire = alerts_to_fire(np.array([b]), thr, np.array([fired_level]))
        fired.append(bool(fire[0]))
        fired_level = int(level[0])  # what the prepaid engine stores for the next day
        reached = {t for t in HAND_THRESHOLDS if b <= t}
        expected.append(bool(reached - alerted))
        alerted = reached  # the thresholds the balance rose above are re-armed
    assert fired == expected


def test_default_window():
    p = PrepaidPolicy()
    cases = {
        ts(2026, 10, 7, 7, 59): False,  # Wednesday before 08:00
        ts(2026, 10, 7, 8, 0): True,
        ts(2026, 10, 7, 17, 59): True,
        ts(2026, 10, 7, 18, 0): False,
        ts(2026, 10, 7, 23, 30): False,
        ts(2026, 10, 11, 12, 0): False,  # Sunday
        ts(2026, 10, 2, 12, 0): False,  # Gandhi Jayanti
        ts(2026, 8, 15, 12, 0): False,  # Independence Day
    }
    got = disconnect_allowed(np.array(list(cases)), TZ, p)
    assert got.tolist() == list(cases.values())


def test_configurable_window_and_extra_holidays():
    p = PrepaidPolicy(
        quiet_from=22, quiet_until=6, sundays=False, holiday_country="", extra_holidays=(date(2026, 10, 7),)
    )
    got = disconnect_allowed(np.array([ts(2026, 10, 11, 20), ts(2026, 10, 7, 12), ts(2026, 10, 8, 5)]), TZ, p)
    assert got.tolist() == [True, False, False]


@settings(max_examples=300)
@given(
    st.integers(
        int(datetime(2025, 1, 1, tzinfo=UTC).timestamp()), int(datetime(2028, 12, 31, tzinfo=UTC).timestamp())
    )
)
def test_never_allowed_inside_a_forbidden_window(instant):
    """No automatic disconnection 18:00–08:00 local, on Sundays or on public holidays."""
    allowed = bool(disconnect_allowed([instant], TZ, PrepaidPolicy())[0])
    local = datetime.fromtimestamp(instant, ZoneInfo(TZ))
    forbidden = local.hour >= 18 or local.hour < 8 or local.weekday() == 6 or local.date() in IN_HOLIDAYS
    assert allowed == (not forbidden)
