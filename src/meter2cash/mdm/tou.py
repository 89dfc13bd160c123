"""Time-of-use calendars and the mapping of intervals to their periods, vectorised and DST-aware.

A :class:`TouCalendar` names periods in local wall-clock time: a start and an end (wrapping
midnight when the end is not after the start), the day types and the months they apply on. An
interval belongs to the period containing its local *start* time. Index 0 is the default
period; index ``i`` (1-based) is the ``i``-th listed period. Where listed periods overlap, the
first listed wins. The day type of an interval is that of its local date: ``holiday`` (when the
calendar names a holiday country and the date is a public holiday, or the date is in the
calendar's own ``holiday_dates``), else ``weekend``, else ``weekday``.

The calendar is the MDM's: it says *when* each period is, and splits energy and demand by period
(:mod:`meter2cash.mdm.determinants`). What a period costs is the tariff's
(:class:`meter2cash.cis.tariffs.charges.PricedTouCalendar` adds the prices). Calendars are
written in tariff files, so their faults carry the tariff file's codes (``tariff.bad_time``,
``tariff.out_of_range``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from meter2cash.core.timeutil import local_frame

DAY_TYPES = ("weekday", "weekend", "holiday")
DayType = Literal["weekday", "weekend", "holiday"]


def _fault(code: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(code, "{message}", {"message": message})


def _minute(text: str) -> int:
    """Minutes since local midnight of ``HH:MM`` (``24:00`` is 1440; ``tariff.bad_time``)."""
    try:
        hh, mm = text.split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise _fault("tariff.bad_time", f"time {text!r} is not HH:MM") from None
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise _fault("tariff.bad_time", f"time {text!r} is out of range 00:00..24:00")
    return h * 60 + m


def _all_day_types() -> list[DayType]:
    return ["weekday", "weekend", "holiday"]


class TouPeriod(BaseModel):
    """A time-of-use period: local ``start``–``end`` (wraps midnight when end ≤ start) on day
    types, in ``months`` (1–12; ``None``: all year)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=32)
    start: str
    end: str
    days: list[DayType] = Field(default_factory=_all_day_types)
    months: list[int] | None = None

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        _minute(v)
        return v

    @field_validator("months")
    @classmethod
    def _months(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(not 1 <= m <= 12 for m in v):
            raise _fault("tariff.out_of_range", "months must be 1..12")
        return v

    @property
    def start_minute(self) -> int:
        return _minute(self.start)

    @property
    def end_minute(self) -> int:
        return _minute(self.end)


class TouCalendar(BaseModel):
    """TOU periods; every moment outside them belongs to ``default_period`` (index 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_period: str = "normal"
    #: ISO country code for public holidays (the ``holidays`` package), e.g. ``IN``; optional.
    holidays: str | None = None
    holidays_subdiv: str | None = None
    #: Local weekdays that are weekend days (Monday = 0).
    weekend_days: list[int] = Field(default_factory=lambda: [5, 6])
    #: The utility's own holiday list (added to the country's).
    holiday_dates: list[date] = Field(default_factory=list)
    periods: Sequence[TouPeriod] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> TouCalendar:
        names = self.period_names
        if len(set(names)) != len(names):
            raise ValueError(f"period names must be unique: {names}")
        if any(not 0 <= d <= 6 for d in self.weekend_days):
            raise ValueError("weekend_days are weekdays 0 (Monday) .. 6 (Sunday)")
        if self.holidays:
            import holidays

            if self.holidays.upper() not in holidays.list_supported_countries():
                raise ValueError(f"no holiday calendar for country {self.holidays!r}")
        return self

    @property
    def period_names(self) -> list[str]:
        """The default period's name, then each listed period's (index order)."""
        return [self.default_period, *(p.name for p in self.periods)]


DAY_WEEKDAY, DAY_WEEKEND, DAY_HOLIDAY = 0, 1, 2
_DAY_CODE = {"weekday": DAY_WEEKDAY, "weekend": DAY_WEEKEND, "holiday": DAY_HOLIDAY}


@lru_cache(maxsize=64)
def _holiday_days(country: str, subdiv: str | None, years: tuple[int, ...]) -> npt.NDArray[np.datetime64]:
    import holidays

    cal = holidays.country_holidays(country.upper(), subdiv=subdiv, years=list(years))
    return np.array(sorted(cal.keys()), dtype="datetime64[D]")


def day_types(
    local_dates: npt.NDArray[np.datetime64],
    weekdays: npt.NDArray[np.integer],
    calendar: TouCalendar,
) -> npt.NDArray[np.int8]:
    """Day type code per element (0 weekday, 1 weekend, 2 holiday) for local dates."""
    out = np.where(np.isin(weekdays, calendar.weekend_days), DAY_WEEKEND, DAY_WEEKDAY).astype(np.int8)
    if local_dates.size and (calendar.holidays or calendar.holiday_dates):
        days = local_dates.astype("datetime64[D]")
        if calendar.holidays:
            years = np.unique(days.astype("datetime64[Y]").astype(np.int64) + 1970)
            hol = _holiday_days(calendar.holidays, calendar.holidays_subdiv, tuple(int(y) for y in years))
            out[np.isin(days, hol)] = DAY_HOLIDAY
        if calendar.holiday_dates:
            out[np.isin(days, np.array(calendar.holiday_dates, dtype="datetime64[D]"))] = DAY_HOLIDAY
    return out


def tou_period_index(
    epoch_s: npt.NDArray[np.int64], calendar: TouCalendar | None, tz: ZoneInfo | str
) -> npt.NDArray[np.int8]:
    """TOU period index of every interval start.

    Parameters
    ----------
    epoch_s : int64 array
        Interval start times [s since 1970-01-01 UTC].
    calendar : TouCalendar or None
        The tariff version's periods; ``None`` maps everything to period 0.
    tz : IANA zone
        The utility's local time zone (periods are local wall-clock times; DST handled).

    Returns
    -------
    int8 array, same shape: 0 for the default period, ``i`` for the ``i``-th listed period.
    """
    epoch_s = np.asarray(epoch_s, dtype=np.int64)
    out = np.zeros(epoch_s.shape, dtype=np.int8)
    if calendar is None or epoch_s.size == 0:
        return out
    frame = local_frame(epoch_s.ravel(), tz)
    minute = frame["minute_of_day"].to_numpy(np.int32)
    month = frame["month"].to_numpy(np.int8)
    dtype = day_types(frame["date"].to_numpy("datetime64[D]"), frame["weekday"].to_numpy(), calendar)
    flat = out.ravel()
    # Assign in reverse so that the first listed period wins where periods overlap.
    for idx in range(len(calendar.periods), 0, -1):
        p = calendar.periods[idx - 1]
        s, e = p.start_minute, p.end_minute
        in_time = (minute >= s) & (minute < e) if s < e else (minute >= s) | (minute < e)
        mask = in_time & np.isin(dtype, [_DAY_CODE[d] for d in p.days])
        if p.months is not None:
            mask &= np.isin(month, p.months)
        flat[mask] = idx
    return flat.reshape(epoch_s.shape)
