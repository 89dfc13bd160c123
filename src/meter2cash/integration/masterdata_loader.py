"""One master-data load: the keys resolved so far, rejected keys, counts, problems and audit rows,
and the steps every entity goes through (validate, resolve references, look up what is stored,
insert, write a meter's channels).

:mod:`meter2cash.integration.masterdata` runs the entities in order; installations
(:mod:`.masterdata_lifecycle`), agreement periods (:mod:`.masterdata_agreements`) and dated
changes of agreements (:mod:`.masterdata_changes`) work on a :class:`Loader`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, aliased

from meter2cash.audit.models import AuditEntry
from meter2cash.cis.tariffs.models import TariffVersion
from meter2cash.config import get_settings
from meter2cash.core.errors import Problem
from meter2cash.core.timeutil import utcnow
from meter2cash.integration.masterdata_io import Section
from meter2cash.integration.masterdata_spec import (
    ENTITIES,
    ENTITY,
    EntitySpec,
    raw_key,
    record_key,
    to_json,
    validate_record,
)
from meter2cash.mdm.models import Channel, ReadingType
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.usage.port import UsageFactory
from meter2cash.mdm.usage.sources import usage_factory

CHUNK = 2000
#: The entity whose records carry contract terms.
TERMED = "service_agreements"


@dataclass(slots=True)
class EntityCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0


@dataclass(slots=True)
class LoadResult:
    """What a load did, per entity, and every problem found (good records were kept)."""

    counts: dict[str, EntityCounts] = field(
        default_factory=lambda: {e.name: EntityCounts() for e in ENTITIES}
    )
    problems: list[Problem] = field(default_factory=list)

    def _total(self, attr: str) -> int:
        return sum(getattr(c, attr) for c in self.counts.values())

    @property
    def created(self) -> int:
        return self._total("created")

    @property
    def updated(self) -> int:
        return self._total("updated")

    @property
    def unchanged(self) -> int:
        return self._total("unchanged")

    @property
    def rejected(self) -> int:
        return self._total("rejected")

    def to_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "entities": {
                name: {
                    "created": c.created,
                    "updated": c.updated,
                    "unchanged": c.unchanged,
                    "rejected": c.rejected,
                }
                for name, c in self.counts.items()
            },
            "problems": [p.to_dict() for p in self.problems],
        }


def natural_select(spec: EntitySpec) -> Any:
    """Rows of ``spec``'s table in bundle form: ``_id`` plus every field, references as natural keys."""
    model = spec.model
    cols: list[Any] = [model.id.label("_id")]  # type: ignore[attr-defined]
    joins: list[tuple[Any, Any]] = []
    for f in spec.fields:
        if f.kind in ("channels", "terms"):
            continue
        if f.kind == "ref":
            target = ENTITY[str(f.ref)]
            alias = aliased(target.model)
            cols.append(getattr(alias, target.key_attr).label(f.name))
            joins.append((alias, alias.id == getattr(model, f.attr)))  # type: ignore[attr-defined]
        else:
            cols.append(getattr(model, f.attr).label(f.name))
    stmt = select(*cols).select_from(model)
    for alias, on in joins:
        stmt = stmt.outerjoin(alias, on)
    return stmt


def same(old: Any, new: Any) -> bool:
    """Equal in meaning: ``Decimal('5.0') == 5``; a stored float read equals its decimal text."""
    if isinstance(old, float):
        return old == float(new)
    return bool(old == new)


class Loader:
    """One load: keys resolved so far, rejected keys, counts, problems and audit rows."""

    def __init__(self, session: Session, actor: str, utility: Utility | None = None) -> None:
        self.session = session
        self.actor = actor
        self.utility = utility or Utility.from_settings()
        self.result = LoadResult()
        self.ids: dict[str, dict[str, int]] = {e.name: {} for e in ENTITIES}
        self.rejected: dict[str, set[str]] = {e.name: set() for e in ENTITIES}
        self.audit: list[dict[str, Any]] = []
        self._tariffs: set[str] | None = None

    # --- bookkeeping ------------------------------------------------------------------------

    def reject(self, spec: EntitySpec, problems: Sequence[Problem], key: str | None) -> None:
        self.result.problems.extend(problems)
        self.result.counts[spec.name].rejected += 1
        if key is not None:
            self.rejected[spec.name].add(key)

    def audit_row(self, spec: EntitySpec, key: str, before: Any, after: Any) -> None:
        self.audit.append(
            {
                "actor": self.actor,
                "action": "masterdata.update" if before is not None else "masterdata.create",
                "entity": spec.audit_name,
                "entity_id": key[:64],
                "before": None if before is None else to_json(before),
                "after": to_json(after),
            }
        )

    def flush_audit(self) -> None:
        for i in range(0, len(self.audit), CHUNK):
            self.session.execute(insert(AuditEntry), self.audit[i : i + CHUNK])
        self.audit.clear()

    # --- shared steps -----------------------------------------------------------------------

    def tariff_codes(self) -> set[str]:
        """The codes of the tariffs loaded (agreements must name one of them)."""
        if self._tariffs is None:
            self._tariffs = set(self.session.scalars(select(TariffVersion.code).distinct()))
        return self._tariffs

    def validated(self, spec: EntitySpec, section: Section) -> list[tuple[int, dict[str, Any]]]:
        """Valid records, first of each key; bad records and later duplicates are rejected."""
        good: list[tuple[int, dict[str, Any]]] = []
        first_line: dict[str, int] = {}
        tariffs = self.tariff_codes() if spec.name == TERMED else None
        for line, raw in section.records:
            rec, problems = validate_record(spec, raw, line=line, source=section.source, tariffs=tariffs)
            if rec is None:
                self.reject(spec, problems, raw_key(spec, raw))
                continue
            key = record_key(spec, rec)
            if key in first_line:
                msg = f"{key} appears again (first at line {first_line[key]}); this record is ignored"
                problem = Problem(
                    "masterdata.duplicate_key",
                    msg,
                    line,
                    spec.key,
                    section.source,
                    {"first_line": first_line[key]},
                )
                self.reject(spec, [problem], None)
                continue
            first_line[key] = line
            good.append((line, rec))
        return good

    def resolve_refs(
        self, spec: EntitySpec, records: list[tuple[int, dict[str, Any]]], source: str
    ) -> list[tuple[int, dict[str, Any]]]:
        """Records whose references all resolve (in this bundle or the database)."""
        refs = [f for f in spec.fields if f.kind == "ref"]
        for f in refs:
            target = ENTITY[str(f.ref)]
            known, bad = self.ids[target.name], self.rejected[target.name]
            wanted = {r[f.name] for _, r in records if f.name in r} - known.keys() - bad
            self.lookup_ids(target, wanted)
        ok: list[tuple[int, dict[str, Any]]] = []
        for line, rec in records:
            problems = []
            for f in refs:
                if f.name not in rec:
                    continue
                target, value = ENTITY[str(f.ref)], rec[f.name]
                if value in self.rejected[target.name]:
                    msg = f"{f.name} {value} refers to a {target.audit_name} record that was rejected"
                    code = "masterdata.unresolved_reference"
                elif value not in self.ids[target.name]:
                    msg = f"{f.name} {value} is neither in this bundle nor in the database"
                    code = "masterdata.unknown_reference"
                else:
                    continue
                problems.append(
                    Problem(code, msg, line, f.name, source, {"entity": target.name, "key": value})
                )
            if problems:
                self.reject(spec, problems, record_key(spec, rec) if spec.name != "installations" else None)
            else:
                ok.append((line, rec))
        return ok

    def lookup_ids(self, spec: EntitySpec, keys: Iterable[str]) -> None:
        keys = list(keys)
        col = getattr(spec.model, spec.key_attr)
        for i in range(0, len(keys), CHUNK):
            stmt = select(col, spec.model.id).where(col.in_(keys[i : i + CHUNK]))  # type: ignore[attr-defined]
            self.ids[spec.name].update({k: int(v) for k, v in self.session.execute(stmt)})

    def existing(self, spec: EntitySpec, keys: list[str]) -> dict[str, dict[str, Any]]:
        col = getattr(spec.model, spec.key_attr)
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), CHUNK):
            stmt = natural_select(spec).where(col.in_(keys[i : i + CHUNK]))
            for row in self.session.execute(stmt).mappings():
                out[str(row[spec.key])] = dict(row)
        return out

    def columns(self, spec: EntitySpec, rec: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name in names:
            f = spec.field(name)
            if f.kind in ("channels", "terms"):
                continue
            v = rec.get(name, f.default)
            row[f.attr] = self.ids[str(f.ref)][v] if f.kind == "ref" and v is not None else v
        return row

    def insert(self, spec: EntitySpec, records: list[dict[str, Any]]) -> None:
        names = [f.name for f in spec.fields]
        key_col = getattr(spec.model, spec.key_attr)
        for i in range(0, len(records), CHUNK):
            part = records[i : i + CHUNK]
            rows = [self.columns(spec, r, names) for r in part]
            stmt = insert(spec.model).returning(spec.model.id, key_col, sort_by_parameter_order=True)  # type: ignore[attr-defined]
            for new_id, key in self.session.execute(stmt, rows):
                self.ids[spec.name][str(key)] = int(new_id)
        for rec in records:
            self.audit_row(spec, str(rec[spec.key]), None, rec)

    # --- meter channels ---------------------------------------------------------------------

    def existing_channels(self, meter_ids: list[int]) -> dict[int, dict[str, tuple[int, Any]]]:
        """``{meter_id: {reading_type code: (channel id, multiplier)}}``."""
        out: dict[int, dict[str, tuple[int, Any]]] = {}
        for i in range(0, len(meter_ids), CHUNK):
            stmt = (
                select(Channel.meter_id, ReadingType.code, Channel.id, Channel.multiplier)
                .join(ReadingType, ReadingType.id == Channel.reading_type_id)
                .where(Channel.meter_id.in_(meter_ids[i : i + CHUNK]))
                .order_by(Channel.id)
            )
            for mid, code, cid, mult in self.session.execute(stmt):
                out.setdefault(mid, {})[code] = (cid, mult)
        return out

    def write_channels(
        self, records: list[dict[str, Any]], existing: dict[int, dict[str, tuple[int, Any]]]
    ) -> None:
        """Add missing channels, change multipliers; channels not listed are left as they are."""
        if not records:
            return
        types = ensure_catalogue(self.session)
        new: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        for rec in records:
            mid = self.ids["meters"][rec["serial"]]
            have = existing.get(mid, {})
            for ch in rec["channels"]:
                if ch["reading_type"] not in have:
                    new.append(
                        {
                            "meter_id": mid,
                            "reading_type_id": types[ch["reading_type"]].id,
                            "multiplier": ch["multiplier"],
                        }
                    )
                elif have[ch["reading_type"]][1] != ch["multiplier"]:
                    changed.append({"id": have[ch["reading_type"]][0], "multiplier": ch["multiplier"]})
        for i in range(0, len(new), CHUNK):
            self.session.execute(insert(Channel), new[i : i + CHUNK])
        if changed:
            self.session.execute(update(Channel), changed)


@dataclass(frozen=True, slots=True)
class Utility:
    """What a load needs to know of the utility: its time zone (today's date) and currency, for
    payment-mode changes that settle balances."""

    timezone: str
    currency: str
    #: Where the bills a payment-mode change reaches are rebilled from.
    usage: UsageFactory

    @classmethod
    def from_settings(cls) -> Utility:
        cfg = get_settings()
        return cls(cfg.timezone, cfg.currency, usage_factory(cfg.usage_source))

    def today(self) -> date:
        return utcnow().astimezone(ZoneInfo(self.timezone)).date()
