"""TOU period mapping in local time: DST zones, a half-hour offset zone, day types and holidays."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from pydantic import ValidationError

from meter2cash.core.quality import Quality
from meter2cash.mdm.determinants import bill_determinants
from meter2cash.mdm.tou import TouCalendar, tou_period_index


def cal(**kw) -> TouCalendar:
    periods = kw.pop(
        "periods",
        [
            {"name": "peak", "start": "18:00", "end": "22:00", "days": ["weekday"]},
            {"name": "night", "start": "22:00", "end": "06:00"},
        ],
    )
    return TouCalendar.model_validate({"periods": periods, **kw})


def epoch(*args) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


def starts(first: datetime, n: int, step: int = 900) -> np.ndarray:
    return int(first.timestamp()) + np.arange(n, dtype=np.int64) * step


def test_kolkata_half_hour_offset():
    # 2026-10-07 is a Wednesday; 18:00 IST = 12:30 UTC, 22:00 IST = 16:30 UTC.
    ts = np.array(
        [
            epoch(2026, 10, 7, 12, 15),
            epoch(2026, 10, 7, 12, 30),
            epoch(2026, 10, 7, 16, 15),
            epoch(2026, 10, 7, 16, 30),
            epoch(2026, 10, 8, 0, 15),
            epoch(2026, 10, 8, 0, 30),
        ]
    )
    assert tou_period_index(ts, cal(), "Asia/Kolkata").tolist() == [0, 1, 1, 2, 2, 0]


def test_weekend_has_no_peak_but_has_night():
    sat = datetime(2026, 10, 10, 12, 30, tzinfo=UTC)  # Saturday 18:00 IST
    idx = tou_period_index(starts(sat, 24), cal(), "Asia/Kolkata")
    assert idx[:16].tolist() == [0] * 16 and idx[16:].tolist() == [2] * 8


def test_holiday_is_not_a_weekday():
    holiday = np.array([epoch(2026, 10, 2, 13, 0)])  # Fri 2 Oct 2026 18:30 IST, Gandhi Jayanti
    assert tou_period_index(holiday, cal(), "Asia/Kolkata").tolist() == [1]
    assert tou_period_index(holiday, cal(holidays="IN"), "Asia/Kolkata").tolist() == [0]


@pytest.mark.parametrize(
    ("zone", "spring", "fall"),
    [
        ("Europe/London", datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 10, 25, tzinfo=UTC)),
        ("America/New_York", datetime(2026, 3, 8, 5, tzinfo=UTC), datetime(2026, 11, 1, 4, tzinfo=UTC)),
    ],
)
def test_dst_days_follow_wall_clock(zone, spring, fall):
    c = cal(periods=[{"name": "peak", "start": "18:00", "end": "22:00"}])
    # A local day of 23 hours (spring) and of 25 hours (autumn): peak stays 4 wall-clock hours.
    for day_start, hours in ((spring, 23), (fall, 25)):
        idx = tou_period_index(starts(day_start, hours * 4), c, zone)
        assert len(idx) == hours * 4
        assert int((idx == 1).sum()) == 16


def test_london_summer_time_shifts_peak_by_an_hour():
    c = cal(periods=[{"name": "peak", "start": "18:00", "end": "22:00"}])
    summer = np.array([epoch(2026, 7, 1, 16, 45), epoch(2026, 7, 1, 17, 0)])  # 17:45, 18:00 BST
    winter = np.array([epoch(2026, 1, 7, 17, 45), epoch(2026, 1, 7, 18, 0)])  # 17:45, 18:00 GMT
    assert tou_period_index(summer, c, "Europe/London").tolist() == [0, 1]
    assert tou_period_index(winter, c, "Europe/London").tolist() == [0, 1]


def test_first_listed_period_wins_and_months_filter():
    c = cal(
        periods=[
            {"name": "summer_peak", "start": "12:00", "end": "16:00", "months": [4, 5, 6]},
            {"name": "day", "start": "06:00", "end": "18:00"},
        ]
    )
    ts = np.array([epoch(2026, 5, 4, 13), epoch(2026, 11, 4, 13), epoch(2026, 5, 4, 3)])  # UTC = London+0/1
    assert tou_period_index(ts, c, "UTC").tolist() == [1, 2, 0]


def test_calendar_says_when_not_what_it_costs():
    # The MDM's calendar has times, days and months only: a price belongs to the tariff.
    with pytest.raises(ValidationError) as info:
        cal(periods=[{"name": "peak", "start": "18:00", "end": "22:00", "rate": "9"}])
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [
        (("periods", 0, "rate"), "extra_forbidden")
    ]


@pytest.mark.parametrize(
    ("period", "kw", "loc", "code"),
    [
        ({"start": "18:00", "end": "25:00"}, {}, ("periods", 0, "end"), "tariff.bad_time"),
        ({"start": "6pm", "end": "22:00"}, {}, ("periods", 0, "start"), "tariff.bad_time"),
        (
            {"start": "18:00", "end": "22:00", "months": [13]},
            {},
            ("periods", 0, "months"),
            "tariff.out_of_range",
        ),
        ({"start": "18:00", "end": "22:00"}, {"default_period": "peak"}, (), "value_error"),
        ({"start": "18:00", "end": "22:00"}, {"weekend_days": [7]}, (), "value_error"),
    ],
)
def test_calendar_faults_keep_their_codes(period, kw, loc, code):
    with pytest.raises(ValidationError) as info:
        cal(periods=[{"name": "peak", **period}], **kw)
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [(loc, code)]


def test_no_calendar_maps_to_period_zero():
    assert tou_period_index(np.arange(5, dtype=np.int64), None, "UTC").tolist() == [0] * 5


def test_determinants_kernel():
    values = np.array([[1.0, 2.0, np.nan, 4.0], [0.5, 0.5, 0.5, 0.5]])
    flags = np.array([[0, Quality.ESTIMATED, Quality.MISSING, 0], [0, 0, 0, 0]], dtype=np.uint16)
    pidx = np.array([0, 1, 1, 0], dtype=np.int8)
    d = bill_determinants(values, flags, pidx, 2, 900)
    assert d.kwh_total.tolist() == [7.0, 2.0]
    assert d.kwh_by_period.tolist() == [[5.0, 2.0], [1.0, 1.0]]
    assert d.max_demand_kw.tolist() == [16.0, 2.0]  # 4 kWh in 15 min = 16 kW
    assert d.max_demand_kw_by_period[0].tolist() == [16.0, 8.0]
    assert d.missing_share.tolist() == [0.25, 0.0] and d.estimated_share.tolist() == [0.25, 0.0]
    half_hour = bill_determinants(values, flags, pidx, 2, 900, demand_interval_s=1800)
    # 30-min blocks: (1+2) kWh → 6 kW in period 0... block 2 (missing + 4 kWh) → 8 kW, in period 1
    assert half_hour.max_demand_kw.tolist() == [8.0, 2.0]
    assert half_hour.max_demand_kw_by_period[0].tolist() == [6.0, 8.0]
