"""Determinants across the MDM–CIS boundary (docs/formats.md#determinants).

Two ways: :func:`export_determinants` gives an external CIS this platform's determinants of
service points over local days, read through a usage source (the measurement store's) and
written as a determinants document; :func:`deliver` stores an external MDM's document, each
record against a service point of this platform, every version kept and the latest current
(:class:`~meter2cash.mdm.usage.external.ExternalUsage` bills from them). A tariff, when named,
chooses the TOU calendar and the demand interval of its version in effect on the first day;
without one the energy is one period ``total`` and demand is over the data's interval.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.parties.models import ServicePoint
from meter2cash.cis.rating.types import split_wh
from meter2cash.core.errors import InvalidInput, Problem
from meter2cash.core.timeutil import check_date, utcnow
from meter2cash.mdm.usage.format import MAX_DAYS, TOTAL, DeterminantRecord, ParsedDeterminants, document
from meter2cash.mdm.usage.models import ExternalDeterminants
from meter2cash.mdm.usage.port import UsageBatch, UsageQuery, UsageSource

#: Service point codes per lookup.
_CODES = 500

#: Service points one request of the API may name.
MAX_SERVICE_POINTS = 1000
#: How this platform names itself as the ``source`` of the documents it gives out.
SOURCE = "meter2cash"


@dataclass(slots=True)
class Export:
    """A document of determinants, and why a service point asked for has no record in it."""

    document: dict[str, Any]
    problems: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The document with the problems beside its records (docs/formats.md#determinants)."""
        return {**self.document, "problems": self.problems}


def check_days(first: date, last: date) -> None:
    """The days of an export: in the platform's date window, ``to`` not before ``from``, at most
    :data:`~meter2cash.mdm.usage.format.MAX_DAYS` of them (``usage.bad_days`` otherwise)."""
    check_date(first, "from")
    check_date(last, "to")
    if last < first:
        raise InvalidInput(f"to {last} is before from {first}", code="usage.bad_days", field="to")
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidInput(
            f"{first}..{last} is {(last - first).days + 1} days; at most {MAX_DAYS} are given at once",
            code="usage.bad_days",
            field="to",
        )


def local_window(first: date, last: date, tz: str) -> tuple[datetime, datetime]:
    """The UTC window of local days ``first``..``last`` (inclusive) in ``tz``."""
    zone = ZoneInfo(tz)
    start = datetime.combine(first, time(), zone)
    end = datetime.combine(last + timedelta(days=1), time(), zone)
    return start, end


def export_determinants(
    session: Session,
    source: UsageSource,
    codes: list[str] | None,
    first: date,
    last: date,
    *,
    tz: str,
    tariff: str | None = None,
) -> Export:
    """Determinants of the service points ``codes`` (``None``: every one) over local days
    ``first``..``last`` read through ``source``: one record per service point in the order
    asked, a problem for each without one (``service_point.not_found``, or the source's code such
    as ``usage.no_meter``). ``tariff``: the code of a stored tariff (``tariff.not_found``)."""
    check_days(first, last)
    tou, names, demand_s = None, [TOTAL], None
    if tariff is not None:
        from meter2cash.cis.tariffs.loader import tariff_version_for

        _, vdef = tariff_version_for(session, tariff, first)
        tou, names = vdef.tou, list(vdef.period_names)
        demand_s = vdef.demand.interval_s if vdef.demand else None
        if tou is None:
            names = [TOTAL]
    stmt = select(ServicePoint.code, ServicePoint.id)
    if codes is None:
        ids = dict(session.execute(stmt.order_by(ServicePoint.code)).all())
        asked = list(ids)
    else:
        asked = list(dict.fromkeys(codes))
        ids = {}
        for at in range(0, len(asked), _CODES):
            ids.update(session.execute(stmt.where(ServicePoint.code.in_(asked[at : at + _CODES]))).all())
    problems = {
        c: {"service_point": c, "code": "service_point.not_found", "message": f"no service point {c!r}"}
        for c in asked
        if c not in ids
    }
    found = [c for c in asked if c in ids]
    records: dict[str, dict[str, Any]] = {}
    if found:
        start, end = local_window(first, last, tz)
        query = UsageQuery(
            service_point_ids=[ids[c] for c in found],
            service_point_codes=found,
            first=[first] * len(found),
            last=[last] * len(found),
            start=start,
            end=end,
            tz=tz,
            tou=tou,
            period_names=names,
            demand_interval_s=demand_s,
        )
        for batch in source.usage(query):
            for p in batch.problems:
                code = found[p.row]
                problems[code] = {"service_point": code, "code": p.code, "message": p.message}
            for r, rec in records_of(query, batch):
                records[found[r]] = rec
    return Export(
        document(SOURCE, tz, [records[c] for c in asked if c in records]),
        [problems[c] for c in asked if c in problems],
    )


# --- writing ----------------------------------------------------------------------------------


def _milli(values: np.ndarray) -> list[str]:
    """kWh or kW as decimal strings of whole Wh or W, rounded as rating rounds them."""
    whole = np.rint(np.nan_to_num(np.asarray(values, dtype=np.float64)) * 1000).astype(np.int64)
    return [format(Decimal(int(w)).scaleb(-3), ".3f") for w in whole.tolist()]


def _share(value: float) -> str:
    """A share of intervals with 6 places; a share above 0 never reads as 0."""
    text = f"{value:.6f}"
    return "0.000001" if value > 0 and Decimal(text) == 0 else text


def version_of(fingerprint: Mapping[str, Any]) -> str:
    """A short, stable version string for a source's data-version fingerprint."""
    text = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def records_of(query: UsageQuery, batch: UsageBatch) -> list[tuple[int, dict[str, Any]]]:
    """The records of a batch's rows as the document carries them, with their query row.

    The energy of the periods is shared out of the total in whole Wh the way rating shares it
    (largest remainder), so the periods add up to the total and a CIS billing the record rates
    what this platform would."""
    det = batch.det
    if not len(batch):
        return []
    names = list(query.period_names) if query.tou is not None else [TOTAL]
    by_period = det.kwh_by_period if query.tou is not None else det.kwh_total[:, None]
    md_by_period = det.max_demand_kw_by_period if query.tou is not None else det.max_demand_kw[:, None]
    wh = split_wh(np.asarray(by_period, dtype=np.float64), det.kwh_total)
    days = [date.fromisoformat(d) for d in batch.days]
    day0 = days[0] if days else None
    demand_s = max(query.demand_interval_s or batch.interval_s, batch.interval_s)
    out = []
    for k, r in enumerate(batch.rows.tolist()):
        first, last = query.first[r], query.last[r]
        lo = (first - day0).days if day0 else 0
        daily = batch.daily_kwh[k, max(lo, 0) : lo + (last - first).days + 1]
        if len(daily) < (last - first).days + 1:  # days outside the window: none measured
            daily = np.concatenate((np.zeros(max(-lo, 0)), daily))
            daily = np.concatenate((daily, np.zeros((last - first).days + 1 - len(daily))))
        periods = _milli(wh[k] / 1000)
        record = {
            "service_point": query.service_point_codes[r],
            "from": first.isoformat(),
            "to": last.isoformat(),
            "version": version_of(batch.versions[k]) if k < len(batch.versions) else "",
            "interval_s": batch.interval_s,
            "demand_interval_s": demand_s,
            "tou_periods": names,
            "kwh_total": format(sum(map(Decimal, periods), Decimal(0)), ".3f"),
            "kwh_by_period": dict(zip(names, periods, strict=True)),
            "max_demand_kw": _milli(det.max_demand_kw[k : k + 1])[0],
            "max_demand_kw_by_period": dict(zip(names, _milli(md_by_period[k]), strict=True)),
            "kvah_total": None if batch.kvah_total is None else _milli(batch.kvah_total[k : k + 1])[0],
            "kwh_export": None if batch.kwh_export is None else _milli(batch.kwh_export[k : k + 1])[0],
            "estimated_share": _share(float(det.estimated_share[k])),
            "missing_share": _share(float(det.missing_share[k])),
            "valid_intervals": int(batch.valid[k]),
            "daily_kwh": {"first": first.isoformat(), "kwh": _milli(daily)},
        }
        out.append((r, record))
    return out


# --- delivery ---------------------------------------------------------------------------------


@dataclass(slots=True)
class DeliveryResult:
    """What a delivered document did: per accepted record its outcome (``new``: first record of
    its service point and days, ``replaced``: a new version became current, ``unchanged``: the
    current version delivered again, ``restored``: an earlier version delivered again became
    current); a problem per refused record."""

    source: str
    accepted: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def refused(self) -> int:
        return len({p.line for p in self.problems})

    def to_dict(self) -> dict[str, Any]:
        outcomes: dict[str, int] = defaultdict(int)
        for a in self.accepted:
            outcomes[a["outcome"]] += 1
        return {
            "source": self.source,
            "records": len(self.accepted) + self.refused,
            "accepted": len(self.accepted),
            "refused": self.refused,
            "outcomes": dict(sorted(outcomes.items())),
            "results": self.accepted,
            "problems": [p.to_dict() for p in self.problems],
        }


def deliver(session: Session, parsed: ParsedDeterminants, *, received_by: str = "") -> DeliveryResult:
    """Store the good records of a parsed document (flushes, does not commit). A record of a
    service point this platform does not know is refused (``usage.unknown_service_point``), so is
    a version already delivered with other figures (``usage.version_conflict``)."""
    result = DeliveryResult(parsed.source, problems=list(parsed.problems))
    codes = sorted({rec.service_point for _, rec in parsed.records})
    known: set[str] = set()
    held: dict[tuple[str, date, date], list[ExternalDeterminants]] = defaultdict(list)
    for c in range(0, len(codes), _CODES):
        part = codes[c : c + _CODES]
        known.update(session.scalars(select(ServicePoint.code).where(ServicePoint.code.in_(part))))
        for row in session.scalars(
            select(ExternalDeterminants)
            .where(ExternalDeterminants.service_point_code.in_(part))
            .order_by(ExternalDeterminants.id)
        ):
            held[(row.service_point_code, row.first_day, row.last_day)].append(row)
    now = utcnow()
    for i, rec in parsed.records:
        where = f"determinants[{i}]"
        if rec.service_point not in known:
            result.problems.append(
                Problem(
                    "usage.unknown_service_point",
                    f"no service point {rec.service_point!r} on this platform",
                    line=i,
                    field=f"{where}.service_point",
                )
            )
            continue
        key = (rec.service_point, rec.from_, rec.to)
        payload = rec.to_json()
        rows = held[key]
        same = next((r for r in rows if r.source == parsed.source and r.version == rec.version), None)
        if same is not None and DeterminantRecord.model_validate(same.payload) != rec:
            result.problems.append(
                Problem(
                    "usage.version_conflict",
                    f"version {rec.version!r} of {rec.service_point} {rec.from_}..{rec.to} was delivered"
                    " before with other figures; a correction is a new version",
                    line=i,
                    field=f"{where}.version",
                )
            )
            continue
        current = next((r for r in reversed(rows) if r.current), None)
        if same is not None and same is current and same.timezone == parsed.timezone:
            outcome = "unchanged"
        else:
            for r in rows:
                r.current = False
            if same is not None:
                same.current, same.received_at, same.timezone = True, now, parsed.timezone
                outcome = "restored"
            else:
                row = ExternalDeterminants(
                    service_point_code=rec.service_point,
                    first_day=rec.from_,
                    last_day=rec.to,
                    version=rec.version,
                    source=parsed.source,
                    timezone=parsed.timezone,
                    current=True,
                    received_at=now,
                    received_by=received_by[:100],
                    payload=payload,
                )
                session.add(row)
                rows.append(row)
                outcome = "replaced" if current is not None else "new"
        result.accepted.append(
            {
                "index": i,
                "service_point": rec.service_point,
                "from": rec.from_.isoformat(),
                "to": rec.to.isoformat(),
                "version": rec.version,
                "outcome": outcome,
            }
        )
    result.problems.sort(key=lambda p: (p.line or 0, p.field or ""))
    session.flush()
    return result
