"""Time-of-use mapping: which TOU period each interval belongs to, vectorised and DST-aware.

Periods are defined in local wall-clock time (see :class:`~meter2cash.cis.tariffs.definitions.TouCalendar`).
An interval belongs to the period containing its local *start* time. Index 0 is the default
period; index ``i`` (1-based) is the ``i``-th listed period. Where listed periods overlap, the
first listed wins. The day type of an interval is that of its local date: ``holiday`` (when the
calendar names a holiday country and the date is a public holiday, or the date is in the
calendar's own ``holiday_dates``), else ``weekend``, else
``weekday``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from meter2cash.core.timeutil import local_frame

if TYPE_CHECKING:
    from meter2cash.cis.tariffs.definitions import TouCalendar

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
