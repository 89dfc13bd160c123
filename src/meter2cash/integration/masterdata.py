"""Master-data bundles: load (upsert by natural key, audited) and export.

A bundle is a JSON object with one array per entity (see docs/masterdata.md), or a directory or
.zip of CSV files with the same field names. :func:`load_bundle` validates every record, keeps the
good ones and reports each bad one as a :class:`Problem`; it works entity by entity with bulk
lookups and bulk writes, so 100,000 service points take seconds, not minutes. It never commits:
the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from meter2cash.cis.parties.models import ContractTerm
from meter2cash.core.errors import InvalidInput, Problem
from meter2cash.core.timeutil import utcnow
from meter2cash.integration.masterdata_agreements import check_overlaps
from meter2cash.integration.masterdata_changes import PendingModeChange, apply_mode_changes, dated_changes
from meter2cash.integration.masterdata_io import Section, read_bundle_path, sections_from_json
from meter2cash.integration.masterdata_lifecycle import load_installations
from meter2cash.integration.masterdata_loader import (
    CHUNK,
    TERMED,
    Loader,
    LoadResult,
    Utility,
    natural_select,
    same,
)
from meter2cash.integration.masterdata_spec import (
    ENTITIES,
    ENTITY,
    EntitySpec,
    to_json,
)
from meter2cash.mdm.models import Channel, Installation, Meter, ReadingType

TERM_COLUMNS = (
    "effective_from",
    "sanctioned_load_kw",
    "contract_demand_kva",
    "payment_mode",
    "tariff_code",
    "reason",
)

__all__ = ["export_bundle", "load_bundle", "load_bundle_path", "load_sections"]


def load_entity(loader: Loader, spec: EntitySpec, section: Section) -> None:
    """Validate, create and update the records of one entity (installations: :func:`load_installations`)."""
    records = loader.resolve_refs(spec, loader.validated(spec, section), section.source)
    if spec.name == TERMED:
        records = check_overlaps(loader, records, section.source)
    existing = loader.existing(spec, [str(r[spec.key]) for _, r in records])
    channels = (
        loader.existing_channels([e["_id"] for e in existing.values()]) if spec.name == "meters" else {}
    )
    terms = (
        existing_terms(loader.session, [e["_id"] for e in existing.values()]) if spec.name == TERMED else {}
    )
    mode_changes: list[PendingModeChange] = []
    if spec.name == TERMED:
        records, mode_changes = dated_changes(
            loader, records, existing, terms, section.source, loader.utility.today()
        )
    counts = loader.result.counts[spec.name]
    creates: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for _, rec in records:
        key = str(rec[spec.key])
        old = existing.get(key)
        if old is None:
            creates.append(rec)
            continue
        changed = [n for n, v in rec.items() if n not in ("channels", "terms") and not same(old.get(n), v)]
        before = {n: old.get(n) for n in changed}
        after = {n: rec[n] for n in changed}
        if "terms" in rec and terms.get(old["_id"], ()) != rec["terms"]:
            before["terms"], after["terms"] = list(terms.get(old["_id"], ())), rec["terms"]
        if "channels" in rec:
            have = channels.get(old["_id"], {})
            if any(c["multiplier"] != have.get(c["reading_type"], (0, None))[1] for c in rec["channels"]):
                before["channels"] = [{"reading_type": k, "multiplier": m} for k, (_, m) in have.items()]
                after["channels"] = rec["channels"]
        if not before:
            counts.unchanged += 1
            loader.ids[spec.name][key] = old["_id"]
            continue
        if changed:
            updates.append({"id": old["_id"], **loader.columns(spec, rec, changed)})
        loader.ids[spec.name][key] = old["_id"]
        loader.audit_row(spec, key, before, after)
        counts.updated += 1
    if updates:
        loader.session.execute(update(spec.model), updates)
    loader.insert(spec, creates)
    counts.created += len(creates)
    if spec.name == "meters":
        loader.write_channels([r for _, r in records if "channels" in r], channels)
    if spec.name == TERMED:
        ids = loader.ids[spec.name]
        write_terms(
            loader.session,
            {ids[str(r["number"])]: r["terms"] for _, r in records if "terms" in r},
            terms,
            loader.actor,
        )
        if mode_changes:
            loader.session.flush()
            u = loader.utility
            apply_mode_changes(
                loader.session, mode_changes, tz=u.timezone, currency=u.currency, usage=u.usage
            )
    loader.flush_audit()


def load_sections(
    session: Session,
    sections: dict[str, Section],
    *,
    actor: str = "cli",
    problems: Sequence[Problem] = (),
    utility: Utility | None = None,
) -> LoadResult:
    """Load parsed sections in dependency order (does not commit)."""
    loader = Loader(session, actor, utility)
    loader.result.problems.extend(problems)
    for spec in ENTITIES:
        section = sections.get(spec.name)
        if section is None:
            continue
        if spec.name == "installations":
            load_installations(loader, spec, section)
        else:
            load_entity(loader, spec, section)
    return loader.result


def load_bundle(
    session: Session, bundle: dict[str, Any], *, actor: str = "cli", utility: Utility | None = None
) -> LoadResult:
    """Validate and upsert a bundle by natural key; every change is audited. Does not commit."""
    if not isinstance(bundle, dict):
        raise InvalidInput(
            "a master-data bundle must be a JSON object of entity arrays", code="masterdata.invalid_bundle"
        )
    sections, problems = sections_from_json(bundle)
    return load_sections(session, sections, actor=actor, problems=problems, utility=utility)


def load_bundle_path(
    session: Session, path: str | Path, *, actor: str = "cli", utility: Utility | None = None
) -> LoadResult:
    """Load a bundle from a .json file, a directory of CSV files or a .zip of them (no commit)."""
    sections, problems = read_bundle_path(Path(path))
    return load_sections(session, sections, actor=actor, problems=problems, utility=utility)


def export_bundle(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Every master-data record in bundle form (loading it back changes nothing)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for spec in ENTITIES:
        if spec.name == "installations":
            continue
        key_col = getattr(spec.model, spec.key_attr)
        stmt = natural_select(spec).where(key_col.is_not(None)).order_by(key_col)
        rows = [dict(r) for r in session.execute(stmt).mappings()]
        if spec.name == "meters":
            channels: dict[int, list[dict[str, Any]]] = {}
            stmt = (
                select(Channel.meter_id, ReadingType.code, Channel.multiplier)
                .join(ReadingType)
                .order_by(Channel.id)
            )
            for mid, code, mult in session.execute(stmt):
                channels.setdefault(mid, []).append({"reading_type": code, "multiplier": mult})
            for r in rows:
                r["channels"] = channels.get(r["_id"], [])
        if spec.name == TERMED:
            by_sa = existing_terms(session, None)
            for r in rows:
                if r["_id"] in by_sa:
                    r["terms"] = list(by_sa[r["_id"]])
        out[spec.name] = [_clean(r) for r in rows]
    inst = ENTITY["installations"]
    stmt = natural_select(inst).order_by(Meter.serial, Installation.installed_at)
    stmt = stmt.join(Meter, Meter.id == Installation.meter_id)
    out["installations"] = [_clean(dict(r)) for r in session.execute(stmt).mappings()]
    order = [e.name for e in ENTITIES]
    return {name: out[name] for name in order}


TERM_FIELDS = TERM_COLUMNS


def existing_terms(session: Session, sa_ids: list[int] | None) -> dict[int, tuple[dict[str, Any], ...]]:
    """``{agreement id: its contract terms in bundle form, by date}`` (``None``: every agreement)."""
    cols = (ContractTerm.service_agreement_id, *(getattr(ContractTerm, c) for c in TERM_COLUMNS))
    stmt = select(*cols).order_by(ContractTerm.service_agreement_id, ContractTerm.effective_from)
    chunks = (
        [stmt]
        if sa_ids is None
        else [
            stmt.where(ContractTerm.service_agreement_id.in_(sa_ids[i : i + CHUNK]))
            for i in range(0, len(sa_ids), CHUNK)
        ]
    )
    out: dict[int, list[dict[str, Any]]] = {}
    for q in chunks:
        for sa, *values in session.execute(q):
            out.setdefault(sa, []).append(dict(zip(TERM_FIELDS, values, strict=True)))
    return {k: tuple(v) for k, v in out.items()}


def write_terms(
    session: Session,
    wanted: dict[int, tuple[dict[str, Any], ...]],
    have: dict[int, tuple[dict[str, Any], ...]],
    actor: str,
) -> None:
    """Make each agreement's contract terms the listed ones (a bundle's ``terms`` are the
    agreement's whole contract history); agreements without ``terms`` keep theirs."""
    changed = [sa for sa, terms in wanted.items() if have.get(sa, ()) != terms]
    for i in range(0, len(changed), CHUNK):
        session.execute(
            delete(ContractTerm).where(ContractTerm.service_agreement_id.in_(changed[i : i + CHUNK]))
        )
    rows = [
        {"service_agreement_id": sa, "created_by": actor, "created_at": utcnow(),
         **{col: t[name] for name, col in zip(TERM_FIELDS, TERM_COLUMNS, strict=True)}}
        for sa in changed
        for t in wanted[sa]
    ]  # fmt: skip
    for i in range(0, len(rows), CHUNK):
        session.execute(insert(ContractTerm), rows[i : i + CHUNK])


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: to_json(v) for k, v in row.items() if k != "_id" and v is not None}
