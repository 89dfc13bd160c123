"""Service agreements of a bundle against each other and the database: one at a time per
service point.

Two agreements on one service point may not share a day (``start_date`` .. ``end_date``, both
inclusive; no ``end_date`` is open-ended). The periods compared are the stored agreements with the
bundle's records applied (a record updates only the fields it gives: an agreement keeps its stored
``end_date`` unless the record gives one), so an agreement that replaces another is accepted when
the same bundle ends the old one first, whatever their order in the bundle. An agreement that
overlaps another is rejected (``masterdata.overlapping_agreement``, the first of two in the bundle
is kept); a rejected update leaves the stored agreement as it was, which may in turn reject a
record that relied on it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import or_, select

from meter2cash.cis.parties.models import ServiceAgreement, ServicePoint
from meter2cash.core.errors import Problem
from meter2cash.integration.masterdata_loader import Loader
from meter2cash.integration.masterdata_spec import ENTITY

CHUNK = 2000


@dataclass(frozen=True, slots=True)
class Period:
    """An agreement's days on a service point (``end`` ``None``: open-ended)."""

    number: str
    service_point: str
    start: date
    end: date | None

    def overlaps(self, other: Period) -> bool:
        return self.start <= (other.end or date.max) and other.start <= (self.end or date.max)

    def shown(self) -> str:
        return f"{self.number} ({self.start} – {self.end or 'open'})"


def stored_periods(loader: Loader, records: list[tuple[int, dict[str, Any]]]) -> dict[str, Period]:
    """The stored agreements on the records' service points and of the records' numbers."""
    sp_ids = sorted({loader.ids["service_points"][r["service_point"]] for _, r in records})
    numbers = sorted({str(r["number"]) for _, r in records})
    sa = ServiceAgreement
    stmt = select(sa.number, ServicePoint.code, sa.start_date, sa.end_date).join(
        ServicePoint, ServicePoint.id == sa.service_point_id
    )
    out: dict[str, Period] = {}
    for i in range(0, max(len(sp_ids), len(numbers)), CHUNK):
        where = or_(sa.service_point_id.in_(sp_ids[i : i + CHUNK]), sa.number.in_(numbers[i : i + CHUNK]))
        for number, sp, start, end in loader.session.execute(stmt.where(where)):
            out[number] = Period(number, sp, start, end)
    return out


def check_overlaps(
    loader: Loader, records: list[tuple[int, dict[str, Any]]], source: str
) -> list[tuple[int, dict[str, Any]]]:
    """The agreement records that overlap no other agreement on their service point; each other
    one is rejected with ``masterdata.overlapping_agreement`` naming the agreement it overlaps."""
    if not records:
        return records
    stored = stored_periods(loader, records)
    wanted: dict[str, Period] = {}
    for _, rec in records:
        number = str(rec["number"])
        old = stored.get(number)
        end = rec.get("end_date", old.end if old else None)
        wanted[number] = Period(number, rec["service_point"], rec["start_date"], end)
    refused: dict[str, tuple[int, Period, Period]] = {}
    while True:
        # Stored agreements the bundle does not change, and those whose change was refused.
        on_sp: dict[str, list[Period]] = defaultdict(list)
        for number, period in stored.items():
            if number not in wanted or number in refused:
                on_sp[period.service_point].append(period)
        more = False
        for line, rec in records:
            number = str(rec["number"])
            if number in refused:
                continue
            mine = wanted[number]
            clash = next((p for p in on_sp[mine.service_point] if p.overlaps(mine)), None)
            if clash is None:
                on_sp[mine.service_point].append(mine)
            else:
                refused[number] = (line, mine, clash)
                more = True
        if not more:
            break
    for line, mine, clash in sorted(refused.values(), key=lambda r: r[0]):
        msg = (
            f"{mine.shown()} overlaps {clash.shown()} on service point {mine.service_point}; "
            f"end {clash.number} before {mine.number} starts (in the same bundle is fine)"
        )
        data = {
            "service_point": mine.service_point,
            "agreement": clash.number,
            "start_date": clash.start.isoformat(),
            "end_date": clash.end.isoformat() if clash.end else None,
        }
        problem = Problem("masterdata.overlapping_agreement", msg, line, "start_date", source, data)
        loader.reject(ENTITY["service_agreements"], [problem], mine.number)
    return [(line, rec) for line, rec in records if str(rec["number"]) not in refused]
