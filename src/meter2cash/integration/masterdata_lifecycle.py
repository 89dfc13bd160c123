"""Installations in a master-data bundle, with the meter lifecycle they imply.

An installation moves its meter to ``installed`` (and to ``removed`` when it carries ``removed_at``),
following :data:`METER_TRANSITIONS`; each move is written as a :class:`MeterStatusChange`. A meter
still installed somewhere cannot be installed again until that installation has a removal, and the
installation windows of one meter never overlap (neither a new one nor a removal moved later).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update

from meter2cash.core.errors import Problem
from meter2cash.integration.masterdata_io import Section
from meter2cash.integration.masterdata_loader import Loader, natural_select, same
from meter2cash.integration.masterdata_spec import EntitySpec, record_key
from meter2cash.mdm.models import METER_TRANSITIONS, Installation, Meter, MeterStatusChange

CHUNK = 2000
FIELDS = ("service_point", "install_read_kwh", "removed_at", "removal_read_kwh")


def _columns(loader: Loader, rec: dict[str, Any], names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name in names:
        v = rec.get(name)
        if name == "service_point":
            row["service_point_id"] = loader.ids["service_points"][str(v)]
        elif isinstance(v, Decimal):
            row[name] = float(v)  # the installation read columns are floats in the schema
        else:
            row[name] = v
    return row


def _overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def end(x: dict[str, Any]) -> float:
        return x["removed_at"].timestamp() if x.get("removed_at") else float("inf")

    return a["installed_at"].timestamp() < end(b) and b["installed_at"].timestamp() < end(a)


def load_installations(loader: Loader, spec: EntitySpec, section: Section) -> None:
    """Create or update installations, moving meters through their lifecycle (no commit)."""
    session, counts = loader.session, loader.result.counts[spec.name]
    records = loader.resolve_refs(spec, loader.validated(spec, section), section.source)
    meter_ids = sorted({loader.ids["meters"][r["meter"]] for _, r in records})
    status: dict[int, str] = {}
    history: dict[int, list[dict[str, Any]]] = {}
    for i in range(0, len(meter_ids), CHUNK):
        part = meter_ids[i : i + CHUNK]
        status.update(
            {m: st for m, st in session.execute(select(Meter.id, Meter.status).where(Meter.id.in_(part)))}
        )
        stmt = natural_select(spec).add_columns(Installation.meter_id).where(Installation.meter_id.in_(part))
        for row in session.execute(stmt).mappings():
            history.setdefault(row["meter_id"], []).append(dict(row))
    new_rows: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    start_status = dict(status)

    def move(mid: int, to: str, at: datetime, reason: str) -> None:
        moves.append(
            {"meter_id": mid, "from_status": status[mid], "to_status": to, "at": at, "reason": reason}
        )
        status[mid] = to

    def refuse(line: int, code: str, msg: str, **data: Any) -> None:
        problem = Problem(f"masterdata.{code}", msg, line, "meter", section.source, data)
        loader.reject(spec, [problem], None)

    for line, rec in sorted(records, key=lambda lr: lr[1]["installed_at"]):
        mid, key = loader.ids["meters"][rec["meter"]], record_key(spec, rec)
        mine = history.setdefault(mid, [])
        old = next((h for h in mine if h["installed_at"] == rec["installed_at"]), None)

        if old is not None:
            changed = [n for n in FIELDS if n in rec and not same(old.get(n), rec[n])]
            if not changed:
                counts.unchanged += 1
                continue
            moved = {**old, "removed_at": rec.get("removed_at", old.get("removed_at"))}
            clash = next((h for h in mine if h is not old and _overlaps(h, moved)), None)
            if "removed_at" in changed and clash is not None:
                refuse(
                    line,
                    "overlapping_installation",
                    f"meter {rec['meter']} removed at {rec['removed_at'].isoformat()} would still be at "
                    f"{old['service_point']} when installed at {clash['service_point']} on "
                    f"{clash['installed_at'].isoformat()}",
                    service_point=clash["service_point"],
                )
                continue
            if "removed_at" in changed and old.get("removed_at") is None and status[mid] == "installed":
                move(mid, "removed", rec["removed_at"], f"removed from {rec['service_point']}")
            updates.append({"id": old["_id"], **_columns(loader, rec, changed)})
            loader.audit_row(spec, key, {n: old.get(n) for n in changed}, {n: rec[n] for n in changed})
            old.update({n: rec[n] for n in changed})
            counts.updated += 1
            continue
        current = next((h for h in mine if h.get("removed_at") is None), None)
        if current is not None:
            at = current["installed_at"].isoformat()
            refuse(
                line,
                "meter_already_installed",
                f"meter {rec['meter']} is installed at {current['service_point']} since {at} with no removal",
                service_point=current["service_point"],
                installed_at=at,
            )
            continue
        clash = next((h for h in mine if _overlaps(h, rec)), None)
        if clash is not None:
            refuse(
                line,
                "overlapping_installation",
                f"meter {rec['meter']} was at {clash['service_point']} during this period",
                service_point=clash["service_point"],
            )
            continue
        if "installed" not in METER_TRANSITIONS.get(status[mid], ()):
            refuse(
                line,
                "invalid_transition",
                f"meter {rec['meter']} is {status[mid]} and cannot be installed",
                status=status[mid],
            )
            continue
        move(mid, "installed", rec["installed_at"], f"installed at {rec['service_point']}")
        if rec.get("removed_at") is not None:
            move(mid, "removed", rec["removed_at"], f"removed from {rec['service_point']}")
        new_rows.append({"meter_id": mid, **_columns(loader, rec, ("installed_at", *FIELDS))})
        mine.append({"_id": None, **rec})
        loader.audit_row(spec, key, None, rec)
        counts.created += 1

    for i in range(0, len(new_rows), CHUNK):
        session.execute(insert(Installation), new_rows[i : i + CHUNK])
    if updates:
        session.execute(update(Installation), updates)
    for i in range(0, len(moves), CHUNK):
        session.execute(insert(MeterStatusChange), moves[i : i + CHUNK])
    changed_status = [{"id": m, "status": s} for m, s in status.items() if s != start_status.get(m)]
    if changed_status:
        session.execute(update(Meter), changed_status)
    loader.flush_audit()
