"""Rule sets by reading type and customer class: packaged TOML files, stored versions, selection.

The package ships ``meter2cash/mdm/vee/rulesets/*.toml`` (documented in ``docs/vee.md``). A rule
set saved through :func:`put_rule_set` (the API's ``PUT /vee/rule-sets/{name}``) is stored as a new
:class:`VeeRuleSetVersion`; the latest stored version of a name overrides the packaged file of
that name. :func:`select_rule_sets` gives every channel the eligible rule set with the highest
priority.

A channel's customer class is the CIS's to know: :func:`channel_classes` follows a channel to the
service points its meter was installed at and asks the caller's :data:`CustomerClasses` for their
classes. Functions take a Session and never commit.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.audit.models import AuditEntry
from meter2cash.core.errors import Conflict, InvalidInput, NotFound
from meter2cash.mdm.models import Channel, Installation, ReadingType
from meter2cash.mdm.vee.models import VeeRuleSetVersion
from meter2cash.mdm.vee.ruleset.schema import RuleSet

_IN = 1000

#: The customer class of each of the given service points that has an agreement (a service point
#: left out has none): ``(session, service point ids) -> {service point id: customer class}``.
CustomerClasses = Callable[[Session, Sequence[int]], Mapping[int, str]]


def packaged_rule_sets() -> dict[str, RuleSet]:
    """The rule sets shipped with the package, by name."""
    out: dict[str, RuleSet] = {}
    folder = resources.files("meter2cash.mdm.vee").joinpath("rulesets")
    if not folder.is_dir():  # an installation without the data files: built-in defaults only
        return out
    for entry in folder.iterdir():
        if entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text(encoding="utf-8"))
            rs = RuleSet.from_mapping(data, source=f"rulesets/{entry.name}")
            out[rs.name] = rs
    return out


def _latest_stored(session: Session) -> dict[str, VeeRuleSetVersion]:
    rows = session.scalars(select(VeeRuleSetVersion).order_by(VeeRuleSetVersion.id))
    return {r.name: r for r in rows}  # the last one of each name wins


def current_rule_sets(session: Session) -> dict[str, RuleSet]:
    """Packaged rule sets, each overridden by its latest stored version; inactive ones left out."""
    out = packaged_rule_sets()
    for name, row in _latest_stored(session).items():
        if row.active:
            out[name] = RuleSet.from_mapping(row.body, source=f"rule set {name}")
        else:
            out.pop(name, None)
    return out


def get_rule_set(session: Session, name: str) -> RuleSet:
    """The current version of a rule set (``vee.rule_set_not_found`` if there is none)."""
    found = current_rule_sets(session).get(name)
    if found is None:
        raise NotFound(f"no VEE rule set {name!r}", code="vee.rule_set_not_found", name=name)
    return found


def rule_set_versions(session: Session, name: str) -> list[dict[str, Any]]:
    """Stored versions of a rule set, oldest first (the packaged file, if any, first of all)."""
    out: list[dict[str, Any]] = []
    packaged = packaged_rule_sets().get(name)
    if packaged is not None:
        out.append({"version": packaged.version, "source": "package", "created_at": None, "created_by": ""})
    stmt = select(VeeRuleSetVersion).where(VeeRuleSetVersion.name == name).order_by(VeeRuleSetVersion.id)
    out += [
        {
            "version": r.version,
            "source": "api",
            "created_at": r.created_at.isoformat(),
            "created_by": r.created_by,
            "active": r.active,
        }
        for r in session.scalars(stmt)
    ]
    return out


def put_rule_set(session: Session, name: str, body: dict[str, Any], *, actor: str = "api") -> RuleSet:
    """Store a new version of rule set ``name`` (validated; the ``version`` must be new).

    Refused: a body whose ``name`` differs (``vee.rule_set_name_mismatch``), an invalid body
    (``vee.rule_set_invalid``), a version already used with other content
    (``vee.rule_set_version_exists``). Re-sending the current version unchanged changes nothing.
    Writes an audit entry. Does not commit.
    """
    body = {**body, "name": body.get("name", name)}
    if body["name"] != name:
        raise InvalidInput(
            f"the body names rule set {body['name']!r}, not {name!r}",
            code="vee.rule_set_name_mismatch",
            field="name",
        )
    rs = RuleSet.from_mapping(body, source=f"rule set {name}")
    current = current_rule_sets(session).get(name)
    if current is not None and current.version == rs.version:
        if current == rs:
            return rs
        raise Conflict(
            f"rule set {name} version {rs.version} exists with other content; give it a new version",
            code="vee.rule_set_version_exists",
            name=name,
            version=rs.version,
        )
    used = session.scalar(
        select(VeeRuleSetVersion.id).where(
            VeeRuleSetVersion.name == name, VeeRuleSetVersion.version == rs.version
        )
    )
    if used is not None:
        raise Conflict(
            f"rule set {name} version {rs.version} was used before; give it a new version",
            code="vee.rule_set_version_exists",
            name=name,
            version=rs.version,
        )
    session.add(VeeRuleSetVersion(name=name, version=rs.version, body=rs.to_mapping(), created_by=actor))
    session.add(
        AuditEntry(
            actor=actor,
            action="vee.rule_set_saved",
            entity="vee_rule_set",
            entity_id=name,
            before=current.to_mapping() if current else None,
            after=rs.to_mapping(),
        )
    )
    session.flush()
    return rs


def channel_classes(
    session: Session, channel_ids: Sequence[int], customer_classes: CustomerClasses | None = None
) -> dict[int, tuple[str, str | None]]:
    """Reading type code and customer class of each channel: the class of the service point the
    meter was last installed at among those ``customer_classes`` knows a class of (``None`` when
    there is none, or no ``customer_classes``)."""
    ids = list(channel_ids)
    out: dict[int, tuple[str, str | None]] = {}
    for i in range(0, len(ids), _IN):
        part = ids[i : i + _IN]
        stmt = (
            select(Channel.id, ReadingType.code)
            .join(ReadingType, ReadingType.id == Channel.reading_type_id)
            .where(Channel.id.in_(part))
        )
        out.update({cid: (code, None) for cid, code in session.execute(stmt)})
        if customer_classes is None:
            continue
        stmt2 = (
            select(Channel.id, Installation.service_point_id)
            .join(Installation, Installation.meter_id == Channel.meter_id)
            .where(Channel.id.in_(part))
            .order_by(Installation.installed_at)
        )
        installed = session.execute(stmt2).all()
        classes = customer_classes(session, sorted({sp for _, sp in installed}))
        for cid, sp in installed:
            if sp in classes:
                out[cid] = (out[cid][0], classes[sp])
    return out


def select_rule_sets(
    rule_sets: dict[str, RuleSet], classes: dict[int, tuple[str, str | None]]
) -> dict[int, RuleSet]:
    """For every channel the eligible rule set with the highest priority (ties: by name).

    Channels no rule set claims get ``RuleSet()`` (the built-in defaults).
    """
    ordered = sorted(rule_sets.values(), key=lambda r: (-r.eligibility.priority, r.name))
    fallback = rule_sets.get("default", RuleSet())
    return {
        cid: next((r for r in ordered if r.eligibility.matches(rt, cls)), fallback)
        for cid, (rt, cls) in classes.items()
    }
