"""Time: UTC storage, utility-local calendars, and the UTC-day slot grid of interval data.

Interval data is stored per channel per UTC day; slot ``i`` of a day with interval length ``s``
seconds covers ``[day + i*s, day + (i+1)*s)``. Timestamps are interval *starts*.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import overload
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd
from dateutil.relativedelta import relativedelta

from meter2cash.core.errors import InvalidInput

SECONDS_PER_DAY = 86_400
ONE_DAY = timedelta(days=1)
EPOCH_DAY0 = date(1970, 1, 1)
#: The window of dates the platform accepts anywhere (payments, periods, contracts, readings):
#: a date outside it is a typing or system error, not history or planning.
FIRST_DATE = date(1970, 1, 1)
LAST_DATE = date(2199, 12, 31)


#: What services ask for the time: :func:`utcnow`, or a fixed or simulated clock in a test or a
#: demo (``bootstrap.Platform.clock``).
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_date(day: date, field: str = "date", *, code: str = "date.out_of_range") -> date:
    """``day`` if it lies in :data:`FIRST_DATE` .. :data:`LAST_DATE`; else :class:`InvalidInput`
    with ``code`` naming ``field``."""
    if not FIRST_DATE <= day <= LAST_DATE:
        raise InvalidInput(
            f"{field} {day.isoformat()} lies outside {FIRST_DATE.isoformat()} .. {LAST_DATE.isoformat()}",
            code=code,
            field=field,
            value=day.isoformat(),
        )
    return day


_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


def parse_month(period: str, field: str = "period") -> date:
    """The first day of the month ``period`` given as ``YYYY-MM`` (``2026-10``); anything else,
    or a month outside the date window, is :class:`InvalidInput` ``period.invalid`` naming
    ``field``. Every entry point that takes a billing period parses it here."""
    match = _MONTH.fullmatch(period) if isinstance(period, str) else None
    if match is None or not 1 <= int(match[2]) <= 12:
        raise InvalidInput(
            f"{field} {_shown(period)} is not a month YYYY-MM such as 2026-10",
            code="period.invalid",
            field=field,
            value=_shown(period),
        )
    year, month = int(match[1]), int(match[2])
    if not FIRST_DATE.year <= year <= LAST_DATE.year:  # date() refuses year 0 with a ValueError
        raise InvalidInput(
            f"{field} {period} lies outside {FIRST_DATE:%Y-%m} .. {LAST_DATE:%Y-%m}",
            code="period.invalid",
            field=field,
            value=period,
        )
    return date(year, month, 1)


def _shown(value: object) -> str:
    text = repr(value) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


# --- calendar months: one set of helpers, on dateutil's relativedelta --------------------------


def month_code(day: date) -> str:
    """The month of ``day`` as ``YYYY-MM`` (``2026-10``), the form billing periods take."""
    return f"{day.year:04d}-{day.month:02d}"


def month_start(day: date) -> date:
    """The first day of ``day``'s month."""
    return date(day.year, day.month, 1)


def next_month_start(day: date) -> date:
    """The first day of the month after ``day``'s."""
    return month_start(day) + relativedelta(months=1)


def month_end(day: date) -> date:
    """The last day of ``day``'s month."""
    return next_month_start(day) - timedelta(days=1)


def days_in_month(day: date) -> int:
    """The number of days of ``day``'s month (28 to 31)."""
    return (next_month_start(day) - month_start(day)).days


@overload
def add_months(month: str, k: int) -> str: ...
@overload
def add_months(month: date, k: int) -> date: ...
def add_months(month: str | date, k: int) -> str | date:
    """``month`` moved ``k`` calendar months (back for ``k`` < 0). A month code ``YYYY-MM`` gives a
    code (``add_months("2026-11", 2) == "2027-01"``); a date gives the same day of that month, or
    the month's last day when it has no such day (31 January + 1 month = 28 or 29 February).

    Codes here are the platform's own (stored periods, periods already parsed); input from outside
    goes through :func:`parse_month` first. A malformed code is a ``ValueError``."""
    if isinstance(month, str):
        return _shifted_code(month, k)
    return month + relativedelta(months=k)


@lru_cache(maxsize=4096)
def _shifted_code(code: str, k: int) -> str:
    # Cached: a bill run asks the same few (period, offset) pairs once per bill row.
    match = _MONTH.fullmatch(code)
    if match is None:
        raise ValueError(f"{code!r} is not a month YYYY-MM")
    return month_code(date(int(match[1]), int(match[2]), 1) + relativedelta(months=k))


def ensure_aware(ts: datetime, name: str = "timestamp") -> datetime:
    """Return ``ts`` in UTC; refuse naive datetimes with a clear error."""
    if ts.tzinfo is None or ts.tzinfo.utcoffset(ts) is None:
        raise ValueError(f"{name} {ts.isoformat()} has no time zone; give an offset such as +05:30 or Z")
    return ts.astimezone(UTC)


def slots_per_day(interval_s: int) -> int:
    if interval_s <= 0 or SECONDS_PER_DAY % interval_s:
        raise ValueError(f"interval length {interval_s} s does not divide a day")
    return SECONDS_PER_DAY // interval_s


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def ordinal_day(n: int) -> date:
    return EPOCH_DAY0 + timedelta(days=int(n))


def utc_days(start: datetime, end: datetime) -> list[date]:
    """UTC days touched by the half-open window ``[start, end)``."""
    start, end = ensure_aware(start, "start"), ensure_aware(end, "end")
    if end <= start:
        return []
    first = start.date()
    last = (end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def epoch_seconds(ts: datetime) -> int:
    return int(ensure_aware(ts).timestamp())


def slot_starts(start: datetime, n: int, interval_s: int) -> npt.NDArray[np.int64]:
    """Epoch seconds of ``n`` consecutive interval starts from ``start``."""
    return epoch_seconds(start) + np.arange(n, dtype=np.int64) * interval_s


def local_frame(epoch_s: npt.NDArray[np.int64], tz: ZoneInfo | str) -> pd.DataFrame:
    """Local calendar fields of UTC epoch seconds, vectorised (handles DST).

    Columns: ``date`` (datetime64 local midnight), ``minute_of_day`` (0..1439), ``weekday`` (Mon=0),
    ``month`` (1..12), ``year``.
    """
    idx = pd.to_datetime(epoch_s, unit="s", utc=True).tz_convert(str(tz))
    return pd.DataFrame(
        {
            "date": idx.tz_localize(None).normalize(),
            "minute_of_day": (idx.hour * 60 + idx.minute).to_numpy(np.int16),
            "weekday": idx.day_of_week.to_numpy(np.int8),
            "month": idx.month.to_numpy(np.int8),
            "year": idx.year.to_numpy(np.int16),
        }
    )


def local_midnight(day: date, tz: ZoneInfo | str) -> datetime:
    """The start of local day ``day`` in zone ``tz``, in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(str(tz))).astimezone(UTC)


def local_month_bounds(period: str, tz: ZoneInfo | str) -> tuple[datetime, datetime]:
    """UTC bounds ``[start, end)`` of a local calendar month given as ``YYYY-MM``."""
    first = parse_month(period)
    nxt = next_month_start(first)
    zone = ZoneInfo(str(tz))
    start = datetime(first.year, first.month, 1, tzinfo=zone).astimezone(UTC)
    end = datetime(nxt.year, nxt.month, 1, tzinfo=zone).astimezone(UTC)
    return start, end
