"""Prepaid policy: balance alerts and the disconnection window, as pure array kernels.

Amounts inside the kernels are exact integers of 10⁻⁴ currency units (the ledger's scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import numpy.typing as npt

from meter2cash.core.timeutil import local_frame

I64 = npt.NDArray[np.int64]
SCALE = 10_000  # ledger amounts are 10⁻⁴ currency units


@dataclass(frozen=True, slots=True)
class PrepaidPolicy:
    """Configurable prepaid rules.

    ``alerts``: thresholds, each ``"30%"`` (of the last recharge) or an absolute amount
    (``"50"``); an alert fires once each time the balance falls to or below it.
    ``emergency_credit``: what a customer may borrow below zero once, until the next recharge
    [currency]. ``grace_hours``: wait after the balance runs out before disconnection [h].
    No automatic disconnection from ``quiet_from`` to ``quiet_until`` local hours, on Sundays
    (``sundays``) and on public holidays of ``holiday_country`` (``holidays`` package; empty:
    none). ``reconnect_target_h``: reconnection target [h]; ``command_timeout_h``: a command not
    executed by then is ``timed_out`` [h].
    """

    alerts: tuple[str, ...] = ("30%", "10%", "0%")
    emergency_credit: Decimal = Decimal("50")
    grace_hours: int = 24
    quiet_from: int = 18
    quiet_until: int = 8
    sundays: bool = True
    holiday_country: str = "IN"
    holiday_subdivision: str | None = None
    reconnect_target_h: int = 2
    command_timeout_h: int = 6
    extra_holidays: tuple[date, ...] = field(default=())


def threshold_matrix(last_recharge: I64, alerts: tuple[str, ...]) -> I64:
    """Alert thresholds per wallet, ``(n, K)`` [10⁻⁴ currency], in the order given (highest first).

    A percentage applies to each wallet's last recharge; an absolute amount is the same for all.
    """
    n = last_recharge.shape[0]
    cols = []
    for spec in alerts:
        s = spec.strip()
        if s.endswith("%"):
            pct = int(Decimal(s[:-1]).scaleb(4))  # 10⁻⁴ %
            cols.append((last_recharge * pct) // 1_000_000)
        else:
            cols.append(np.full(n, int(Decimal(s).scaleb(4)), dtype=np.int64))
    if not cols:
        return np.zeros((n, 0), dtype=np.int64)
    m = np.stack(cols, axis=1).astype(np.int64)
    return -np.sort(-m, axis=1)


def alert_levels(balance: I64, thresholds: I64) -> I64:
    """Deepest threshold reached per wallet (-1: none): thresholds at or above the balance, minus one."""
    return (balance[:, None] <= thresholds).sum(axis=1).astype(np.int64) - 1


def alerts_to_fire(balance: I64, thresholds: I64, fired: I64) -> tuple[I64, npt.NDArray[np.bool_]]:
    """New alert level per wallet and whether an alert fires now.

    An alert fires when the balance has fallen past a threshold not yet fired; when the balance
    rises (a recharge) the level falls with it, so the next downward crossing fires again.
    """
    level = alert_levels(balance, thresholds)
    return level, level > fired


@lru_cache(maxsize=64)
def _holiday_days(country: str, subdivision: str | None, years: tuple[int, ...]) -> frozenset[date]:
    if not country:
        return frozenset()
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=list(years)).keys())


def disconnect_allowed(
    epoch_s: npt.ArrayLike, tz: ZoneInfo | str, policy: PrepaidPolicy
) -> npt.NDArray[np.bool_]:
    """Whether an automatic disconnection may be issued at each instant (UTC epoch seconds) [bool].

    Forbidden: local hours in ``[quiet_from, 24) ∪ [0, quiet_until)`` (a window that wraps
    midnight; when ``quiet_from <= quiet_until`` it is ``[quiet_from, quiet_until)``), Sundays
    when ``sundays``, and public holidays.
    """
    s = np.atleast_1d(np.asarray(epoch_s, dtype=np.int64))
    frame = local_frame(s, tz)
    hour = frame["minute_of_day"].to_numpy() // 60
    if policy.quiet_from > policy.quiet_until:
        quiet = (hour >= policy.quiet_from) | (hour < policy.quiet_until)
    else:
        quiet = (hour >= policy.quiet_from) & (hour < policy.quiet_until)
    ok = ~quiet
    if policy.sundays:
        ok &= frame["weekday"].to_numpy() != 6
    days = frame["date"].dt.date.to_numpy()
    years = tuple(sorted({int(y) for y in frame["year"].to_numpy().tolist()}))
    off = _holiday_days(policy.holiday_country, policy.holiday_subdivision, years) | set(
        policy.extra_holidays
    )
    if off:
        ok &= ~np.isin(days, np.asarray(sorted(off), dtype=object))
    return np.asarray(ok, dtype=bool)
