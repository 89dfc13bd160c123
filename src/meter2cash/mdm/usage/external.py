"""The usage port over determinants an external MDM delivered (docs/formats.md#determinants).

:func:`deliver` stores a delivered document: every version of a record is kept and the latest
delivered for a service point and days is current. :class:`ExternalUsage` answers a
:class:`~meter2cash.mdm.usage.port.UsageQuery` from the current records, as billing reads our
own store through :class:`~meter2cash.mdm.usage.local.LocalUsage`.

The rules of a row: its service point's current record whose days are exactly the row's
``first``..``last`` (a segment of a split bill needs its own record: determinants of part of a
record's days cannot be told from the record — ``usage.not_delivered``); the record's local days
are in the query's zone (``usage.timezone_mismatch``); its TOU periods are the query's by name,
in any order (``usage.tou_mismatch``; a query without a TOU calendar takes any record's total
and maximum demand as its one period); its demand is integrated over the query's demand
interval (``usage.interval_mismatch``). The external MDM estimated its gaps already: a record is
taken as delivered whether or not the query estimates gaps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.mdm.determinants import Determinants
from meter2cash.mdm.usage.format import DeterminantRecord
from meter2cash.mdm.usage.models import ExternalDeterminants
from meter2cash.mdm.usage.port import UsageBatch, UsageProblem, UsageQuery

#: Service point codes per lookup.
_CODES = 500


def current_records(
    session: Session, codes: Sequence[str]
) -> dict[tuple[str, date, date], ExternalDeterminants]:
    """The current record of each service point and days, for the service points ``codes``."""
    out: dict[tuple[str, date, date], ExternalDeterminants] = {}
    unique = sorted(set(codes))
    for c in range(0, len(unique), _CODES):
        for row in session.scalars(
            select(ExternalDeterminants)
            .where(
                ExternalDeterminants.service_point_code.in_(unique[c : c + _CODES]),
                ExternalDeterminants.current.is_(True),
            )
            .order_by(ExternalDeterminants.id)
        ):
            out[(row.service_point_code, row.first_day, row.last_day)] = row
    return out


# --- the usage port -----------------------------------------------------------------------------


class ExternalUsage:
    """Usage from the determinants external MDMs delivered, read through ``session``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def usage(self, query: UsageQuery) -> Iterator[UsageBatch]:
        days = window_days(query.start, query.end, query.tz)
        day0 = date.fromisoformat(days[0]) if days else None
        for c in range(0, query.n_rows, query.chunk_rows):
            rows = range(c, min(c + query.chunk_rows, query.n_rows))
            held = current_records(self.session, [query.service_point_codes[r] for r in rows])
            problems: list[UsageProblem] = []
            by_length: dict[int, list[tuple[int, DeterminantRecord, ExternalDeterminants]]] = defaultdict(
                list
            )
            for r in rows:
                got = _match(query, r, held)
                if isinstance(got, UsageProblem):
                    problems.append(got)
                else:
                    by_length[got[0].interval_s].append((r, *got))
            if not by_length:
                yield UsageBatch.empty(problems)
                continue
            for k, (interval_s, members) in enumerate(sorted(by_length.items())):
                batch = _batch(query, interval_s, members, days, day0)
                if k == 0:
                    batch.problems = problems
                yield batch

    def changed(self, start: datetime, end: datetime, versions: Sequence[Mapping[str, Any]]) -> list[bool]:
        """A fingerprint of this source (``source``, ``version``, ``service_point``, ``from``,
        ``to``) is changed when its service point and days have no current record any more or
        another version is current. A fingerprint of another source (the local store) is not
        this source's to judge: reported unchanged."""
        ours = [v for v in versions if {"source", "version", "service_point", "from", "to"} <= set(v)]
        held = current_records(self.session, [str(v["service_point"]) for v in ours])
        out = []
        for v in versions:
            if not {"source", "version", "service_point", "from", "to"} <= set(v):
                out.append(False)
                continue
            try:
                key = (str(v["service_point"]), date.fromisoformat(v["from"]), date.fromisoformat(v["to"]))
            except (TypeError, ValueError):
                out.append(True)
                continue
            row = held.get(key)
            out.append(row is None or (row.source, row.version) != (v["source"], v["version"]))
        return out


def window_days(start: datetime, end: datetime, tz: str) -> list[str]:
    """The ISO local days of the window ``[start, end)`` in ``tz``."""
    zone = ZoneInfo(tz)
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _match(
    q: UsageQuery, r: int, held: dict[tuple[str, date, date], ExternalDeterminants]
) -> UsageProblem | tuple[DeterminantRecord, ExternalDeterminants]:
    """The record of query row ``r``, or the problem that keeps it from the row."""
    code, first, last = q.service_point_codes[r], q.first[r], q.last[r]
    row = held.get((code, first, last))
    if row is None:
        around = [f"{a}..{b}" for (c, a, b) in sorted(held) if c == code]
        known = f"; delivered: {', '.join(around)}" if around else ""
        return UsageProblem(
            r, "usage.not_delivered", f"no determinants of {code} for {first}..{last} were delivered{known}"
        )
    if row.timezone != q.tz:
        return UsageProblem(
            r,
            "usage.timezone_mismatch",
            f"the determinants of {code} for {first}..{last} are of local days in {row.timezone}, not {q.tz}",
        )
    rec = DeterminantRecord.model_validate(row.payload)
    if q.tou is not None:
        asked, has = set(q.period_names), set(rec.tou_periods)
        if asked != has:
            return UsageProblem(
                r,
                "usage.tou_mismatch",
                f"the determinants of {code} for {first}..{last} give the periods {sorted(has)};"
                f" billing asks for {sorted(asked)}",
            )
    demand_s = max(q.demand_interval_s or rec.interval_s, rec.interval_s)
    if (rec.demand_interval_s or rec.interval_s) != demand_s:
        return UsageProblem(
            r,
            "usage.interval_mismatch",
            f"the maximum demand of {code} for {first}..{last} is over"
            f" {rec.demand_interval_s or rec.interval_s} s; billing asks for {demand_s} s",
        )
    return rec, row


def _f(values: Sequence[Decimal | None]) -> np.ndarray:
    """Decimals as float64 (the nearest double of each; rating rounds them to Wh)."""
    return np.array([float(v) if v is not None else np.nan for v in values], dtype=np.float64)


def _batch(
    q: UsageQuery,
    interval_s: int,
    members: list[tuple[int, DeterminantRecord, ExternalDeterminants]],
    days: list[str],
    day0: date | None,
) -> UsageBatch:
    recs = [m[1] for m in members]
    if q.tou is not None:
        names = list(q.period_names)
        by_period = [[rec.kwh_by_period[p] for p in names] for rec in recs]
        md_by_period = [[rec.max_demand_kw_by_period[p] for p in names] for rec in recs]
    else:
        by_period = [[rec.kwh_total] for rec in recs]
        md_by_period = [[rec.max_demand_kw] for rec in recs]
    n, p = len(recs), max(len(q.period_names), 1) if q.tou is not None else 1
    det = Determinants(
        kwh_total=_f([rec.kwh_total for rec in recs]),
        kwh_by_period=_f([v for row in by_period for v in row]).reshape(n, p),
        max_demand_kw=_f([rec.max_demand_kw for rec in recs]),
        max_demand_kw_by_period=_f([v for row in md_by_period for v in row]).reshape(n, p),
        estimated_share=_f([rec.estimated_share for rec in recs]),
        missing_share=_f([rec.missing_share for rec in recs]),
    )
    daily = np.zeros((n, len(days)))
    for k, rec in enumerate(recs):
        lo = (rec.from_ - day0).days if day0 else 0
        values = _f(rec.daily_kwh.kwh)
        a, b = max(lo, 0), min(lo + len(values), len(days))
        if b > a:
            daily[k, a:b] = values[a - lo : b - lo]
    kvah = export = None
    if q.companions and any(rec.kvah_total is not None for rec in recs):
        kvah = _f([rec.kwh_total if rec.kvah_total is None else rec.kvah_total for rec in recs])
    if q.companions and any(rec.kwh_export is not None for rec in recs):
        export = _f([rec.kwh_export or Decimal(0) for rec in recs])
    return UsageBatch(
        rows=np.array([m[0] for m in members], dtype=np.int64),
        interval_s=interval_s,
        det=det,
        valid=np.array([rec.valid_intervals for rec in recs], dtype=np.int64),
        days=days,
        daily_kwh=daily,
        kvah_total=kvah,
        kwh_export=export,
        channel_ids=[None] * n,
        meters=[None] * n,
        versions=[
            {
                "source": row.source,
                "version": row.version,
                "service_point": row.service_point_code,
                "from": row.first_day.isoformat(),
                "to": row.last_day.isoformat(),
            }
            for _, _, row in members
        ],
    )
