"""The network hierarchy over time: meter → DCU, service point → distribution transformer,
transformer → feeder, and the boundary meters measuring a transformer's or a feeder's energy in.

Every link is kept with its validity (:class:`~meter2cash.mdm.network_models.NetworkLink`); the
current columns (``meter.dcu_id``, ``service_point.dt_id``, ``distribution_transformer.feeder_id``)
follow the latest link, so code reading only the present keeps working. A child that has no
link of a kind yet has its current parent as its only known one, since the platform's first date:
its first recorded change keeps that parent as history up to the change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import column, or_, select, table, update
from sqlalchemy.orm import Session

from meter2cash.audit.models import AuditEntry
from meter2cash.core.errors import InvalidInput, NotFound
from meter2cash.core.timeutil import FIRST_DATE, ensure_aware
from meter2cash.mdm.models import DCU, DistributionTransformer, Feeder, Meter
from meter2cash.mdm.network_models import BOUNDARY_KINDS, LINK_KINDS, BoundaryMeter, NetworkLink

#: The service point table of the CIS, seen by the MDM only through the columns it needs.
SERVICE_POINT = table("service_point", column("id"), column("code"), column("dt_id"))
#: Since when a parent known only from the current columns is taken to hold.
SINCE_EVER = datetime(FIRST_DATE.year, FIRST_DATE.month, FIRST_DATE.day, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LinkKind:
    """How one kind of link names its child and parent and where its current column is."""

    kind: str
    child: str
    parent: str
    child_table: Any
    child_key: Any
    parent_table: Any
    parent_key: Any
    #: The child's column holding its current parent.
    current: Any


KINDS: dict[str, LinkKind] = {
    "meter_dcu": LinkKind(
        "meter_dcu", "meter", "dcu", Meter.__table__, Meter.__table__.c.serial,
        DCU.__table__, DCU.__table__.c.code, Meter.__table__.c.dcu_id,
    ),
    "service_point_dt": LinkKind(
        "service_point_dt", "service_point", "dt", SERVICE_POINT, SERVICE_POINT.c.code,
        DistributionTransformer.__table__, DistributionTransformer.__table__.c.code, SERVICE_POINT.c.dt_id,
    ),
    "dt_feeder": LinkKind(
        "dt_feeder", "dt", "feeder", DistributionTransformer.__table__,
        DistributionTransformer.__table__.c.code, Feeder.__table__, Feeder.__table__.c.code,
        DistributionTransformer.__table__.c.feeder_id,
    ),
}  # fmt: skip


def link_kind(link: str) -> LinkKind:
    """The kind named ``link`` (``network.unknown_link`` otherwise)."""
    try:
        return KINDS[link]
    except KeyError:
        raise InvalidInput(
            f"unknown link {link!r}: one of {', '.join(LINK_KINDS)}",
            code="network.unknown_link",
            field="link",
        ) from None


def _id_of(session: Session, tbl: Any, key: Any, code: str, what: str, error: str) -> int:
    found = session.execute(select(tbl.c.id).where(key == code)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no {what} {code!r}", code=error, **{what: code})
    return int(found)


def _links(session: Session, kind: str, child_id: int) -> list[NetworkLink]:
    stmt = (
        select(NetworkLink)
        .where(NetworkLink.kind == kind, NetworkLink.child_id == child_id)
        .order_by(NetworkLink.valid_from, NetworkLink.id)
    )
    return list(session.scalars(stmt))


def apply_network_change(
    session: Session,
    *,
    link: str,
    child: str,
    parent: str,
    effective_at: datetime,
    source: str = "hes",
    actor: str | None = None,
) -> bool:
    """Record that ``child`` hangs below ``parent`` from ``effective_at`` on.

    ``link`` is ``meter_dcu`` (meter serial → DCU code), ``service_point_dt`` (service point code
    → transformer code) or ``dt_feeder`` (transformer code → feeder code). A change dated inside an
    earlier link splits it there; the new link lasts until the next recorded one (or stays
    current), so a late report of an old move takes its place in history. Returns ``False``
    (changing nothing) when the child already hangs below ``parent`` at ``effective_at``. The
    child's current column follows the latest link. Every change is written to the audit log,
    by ``actor`` (default: the ``source``). Flushes, does not commit.

    Raises :class:`NotFound` ``network.unknown_child`` / ``network.unknown_parent`` and
    :class:`InvalidInput` ``network.unknown_link``.
    """
    k = link_kind(link)
    at = ensure_aware(effective_at, "effective_at")
    child_id = _id_of(session, k.child_table, k.child_key, child, k.child, "network.unknown_child")
    parent_id = _id_of(session, k.parent_table, k.parent_key, parent, k.parent, "network.unknown_parent")
    source = source[: NetworkLink.source.type.length or 64]
    links = _links(session, link, child_id)
    seed = None
    if not links:
        now_parent = session.execute(select(k.current).where(k.child_table.c.id == child_id)).scalar_one()
        if now_parent is not None:
            seed = NetworkLink(
                kind=link, child_id=child_id, parent_id=int(now_parent), valid_from=SINCE_EVER,
                valid_to=None, source="masterdata",
            )  # fmt: skip
            session.add(seed)
            links = [seed]
    covering = next(
        (x for x in links if x.valid_from <= at and (x.valid_to is None or x.valid_to > at)), None
    )
    if covering is not None and covering.parent_id == parent_id:
        if seed is not None:
            session.expunge(seed)
        return False
    before = None if covering is None else covering.parent_id
    if covering is not None and covering.valid_from == at:
        covering.parent_id, covering.source = parent_id, source
    else:
        later = [x for x in links if x.valid_from > at]
        until = covering.valid_to if covering is not None else (later[0].valid_from if later else None)
        if covering is not None:
            covering.valid_to = at
        session.add(
            NetworkLink(kind=link, child_id=child_id, parent_id=parent_id, valid_from=at, valid_to=until,
                        source=source)
        )  # fmt: skip
    session.flush()
    _coalesce(session, _links(session, link, child_id))
    latest = _links(session, link, child_id)[-1]
    session.execute(
        update(k.child_table).where(k.child_table.c.id == child_id).values({k.current.name: latest.parent_id})
    )
    session.add(
        AuditEntry(
            actor=(actor or source)[:100], action="network.change", entity=link, entity_id=child[:64],
            before={"parent_id": before, "effective_at": at.isoformat()},
            after={"parent": parent, "parent_id": parent_id, "effective_at": at.isoformat(),
                   "source": source},
        )
    )  # fmt: skip
    session.flush()
    # an ORM object of the child loaded before the update reads the new parent too
    for obj in list(session.identity_map.values()):
        if getattr(obj, "__tablename__", None) == k.child_table.name and getattr(obj, "id", None) == child_id:
            session.expire(obj, [k.current.name])
    return True


def _coalesce(session: Session, links: list[NetworkLink]) -> None:
    """Join consecutive links to the same parent into one."""
    i = 0
    while i + 1 < len(links):
        a, b = links[i], links[i + 1]
        if a.parent_id == b.parent_id and a.valid_to == b.valid_from:
            a.valid_to = b.valid_to
            session.delete(b)
            links.pop(i + 1)
        else:
            i += 1
    session.flush()


@dataclass(slots=True)
class LinkSpans:
    """The links of one kind touching a window, as arrays: ``child``, ``parent`` and the span
    ``[start, end)`` in epoch seconds (``end`` a far future for a current link)."""

    child: npt.NDArray[np.int64]
    parent: npt.NDArray[np.int64]
    start: npt.NDArray[np.int64]
    end: npt.NDArray[np.int64]

    def at(self, t: int) -> dict[int, int]:
        """Child → parent at epoch second ``t``."""
        sel = (self.start <= t) & (self.end > t)
        return dict(zip(self.child[sel].tolist(), self.parent[sel].tolist(), strict=True))


#: Epoch seconds standing for "no end".
OPEN_END = np.iinfo(np.int64).max // 2


def _epoch(ts: datetime | None) -> int:
    return OPEN_END if ts is None else int(ensure_aware(ts).timestamp())


def link_spans(session: Session, link: str, start: datetime, end: datetime) -> LinkSpans:
    """Every link of kind ``link`` valid at some time in ``[start, end)``, with the children that
    have no recorded link holding their current parent over the whole window."""
    k = link_kind(link)
    rows = session.execute(
        select(
            NetworkLink.child_id, NetworkLink.parent_id, NetworkLink.valid_from, NetworkLink.valid_to
        ).where(
            NetworkLink.kind == link,
            NetworkLink.valid_from < end,
            or_(NetworkLink.valid_to.is_(None), NetworkLink.valid_to > start),
        )
    ).all()
    recorded = select(NetworkLink.child_id).where(NetworkLink.kind == link)
    implicit = session.execute(
        select(k.child_table.c.id, k.current).where(
            k.current.is_not(None), k.child_table.c.id.not_in(recorded)
        )
    ).all()
    child = [r[0] for r in rows] + [r[0] for r in implicit]
    parent = [r[1] for r in rows] + [r[1] for r in implicit]
    first = [_epoch(r[2]) for r in rows] + [_epoch(SINCE_EVER)] * len(implicit)
    last = [_epoch(r[3]) for r in rows] + [OPEN_END] * len(implicit)
    return LinkSpans(*(np.asarray(x, dtype=np.int64) for x in (child, parent, first, last)))


@dataclass(slots=True)
class Hierarchy:
    """The hierarchy at one time, by ids: service point → transformer, transformer → feeder,
    meter → DCU."""

    at: datetime
    service_point_dt: dict[int, int] = field(default_factory=dict)
    dt_feeder: dict[int, int] = field(default_factory=dict)
    meter_dcu: dict[int, int] = field(default_factory=dict)

    def service_points_of(self, dt_id: int) -> list[int]:
        """The service points below transformer ``dt_id``."""
        return sorted(sp for sp, dt in self.service_point_dt.items() if dt == dt_id)

    def dts_of(self, feeder_id: int) -> list[int]:
        """The transformers below feeder ``feeder_id``."""
        return sorted(dt for dt, f in self.dt_feeder.items() if f == feeder_id)

    def by_dt(self) -> dict[int, list[int]]:
        """Transformer → its service points."""
        out: dict[int, list[int]] = defaultdict(list)
        for sp, dt in sorted(self.service_point_dt.items()):
            out[dt].append(sp)
        return dict(out)

    def by_feeder(self) -> dict[int, list[int]]:
        """Feeder → the service points below its transformers."""
        out: dict[int, list[int]] = defaultdict(list)
        for sp, dt in sorted(self.service_point_dt.items()):
            f = self.dt_feeder.get(dt)
            if f is not None:
                out[f].append(sp)
        return dict(out)


def hierarchy_at(session: Session, at: datetime) -> Hierarchy:
    """Which service points hang below which transformer, which transformers below which
    feeder and which meters below which DCU at time ``at``."""
    at = ensure_aware(at, "at")
    t = int(at.timestamp())
    nxt = datetime.fromtimestamp(t + 1, UTC)
    spans = {k: link_spans(session, k, at, nxt).at(t) for k in LINK_KINDS}
    return Hierarchy(at, spans["service_point_dt"], spans["dt_feeder"], spans["meter_dcu"])


def assign_boundary_meter(
    session: Session, *, serial: str, dt: str | None = None, feeder: str | None = None, at: datetime
) -> BoundaryMeter:
    """Make meter ``serial`` the boundary meter of transformer ``dt`` or feeder ``feeder`` from
    ``at`` on. The node's earlier boundary meter and the meter's earlier assignment end at
    ``at``. Flushes, does not commit.

    Raises :class:`InvalidInput` ``network.boundary_target`` (not exactly one of ``dt`` and
    ``feeder``) and :class:`NotFound` ``network.unknown_meter`` / ``network.unknown_parent``.
    """
    if (dt is None) == (feeder is None):
        raise InvalidInput("name either a transformer or a feeder", code="network.boundary_target")
    at = ensure_aware(at, "at")
    m = Meter.__table__
    meter_id = _id_of(session, m, m.c.serial, serial, "meter", "network.unknown_meter")
    if dt is not None:
        d = DistributionTransformer.__table__
        node = _id_of(session, d, d.c.code, dt, "dt", "network.unknown_parent")
        kind, node_col = "dt", BoundaryMeter.dt_id
    else:
        f = Feeder.__table__
        node = _id_of(session, f, f.c.code, feeder or "", "feeder", "network.unknown_parent")
        kind, node_col = "feeder", BoundaryMeter.feeder_id
    open_ = select(BoundaryMeter).where(
        or_(BoundaryMeter.valid_to.is_(None), BoundaryMeter.valid_to > at), BoundaryMeter.valid_from <= at
    )
    for b in session.scalars(open_.where(or_(BoundaryMeter.meter_id == meter_id, node_col == node))):
        if b.meter_id == meter_id and b.kind == kind and getattr(b, node_col.key) == node:
            return b
        b.valid_to = at
    bm = BoundaryMeter(meter_id=meter_id, kind=kind, valid_from=at, valid_to=None)
    setattr(bm, node_col.key, node)
    session.add(bm)
    session.flush()
    return bm


@dataclass(slots=True)
class BoundarySpans:
    """Boundary meters touching a window: ``meter``, the measured ``node`` id, the span in epoch
    seconds."""

    meter: npt.NDArray[np.int64]
    node: npt.NDArray[np.int64]
    start: npt.NDArray[np.int64]
    end: npt.NDArray[np.int64]


def boundary_spans(session: Session, kind: str, start: datetime, end: datetime) -> BoundarySpans:
    """The boundary meters of kind ``dt`` or ``feeder`` assigned at some time in ``[start, end)``."""
    if kind not in BOUNDARY_KINDS:
        raise InvalidInput(
            f"unknown level {kind!r}: dt or feeder", code="network.unknown_level", field="level"
        )
    node_col = BoundaryMeter.dt_id if kind == "dt" else BoundaryMeter.feeder_id
    rows = session.execute(
        select(BoundaryMeter.meter_id, node_col, BoundaryMeter.valid_from, BoundaryMeter.valid_to).where(
            BoundaryMeter.kind == kind,
            node_col.is_not(None),
            BoundaryMeter.valid_from < end,
            or_(BoundaryMeter.valid_to.is_(None), BoundaryMeter.valid_to > start),
        )
    ).all()
    return BoundarySpans(
        np.asarray([r[0] for r in rows], dtype=np.int64),
        np.asarray([r[1] for r in rows], dtype=np.int64),
        np.asarray([_epoch(r[2]) for r in rows], dtype=np.int64),
        np.asarray([_epoch(r[3]) for r in rows], dtype=np.int64),
    )


def node_codes(session: Session, level: str, ids: Iterable[int]) -> dict[int, str]:
    """Codes of transformers (``dt``), feeders (``feeder``) or DCUs (``dcu``) by id."""
    tbl = {"dt": DistributionTransformer, "feeder": Feeder, "dcu": DCU}[level].__table__
    wanted = sorted(set(ids))
    out: dict[int, str] = {}
    for i in range(0, len(wanted), 5000):
        part = wanted[i : i + 5000]
        out.update(
            {int(r[0]): r[1] for r in session.execute(select(tbl.c.id, tbl.c.code).where(tbl.c.id.in_(part)))}
        )
    return out


def describe_node(session: Session, code: str) -> dict[str, Any]:
    """A feeder, transformer, DCU, meter or service point named ``code``: what it is, its current
    parents and children, and the recorded history of its links (``network.unknown_node``)."""
    found = _find_node(session, code)
    if found is None:
        raise NotFound(
            f"no feeder, transformer, DCU, meter or service point {code!r}", code="network.unknown_node"
        )
    what, node_id = found
    as_child = {"meter": "meter_dcu", "service_point": "service_point_dt", "dt": "dt_feeder"}
    as_parent = {"dcu": "meter_dcu", "dt": "service_point_dt", "feeder": "dt_feeder"}
    out: dict[str, Any] = {"code": code, "kind": what, "parent": None, "children": [], "history": []}
    if what in as_child:
        k = KINDS[as_child[what]]
        pid = session.execute(select(k.current).where(k.child_table.c.id == node_id)).scalar_one()
        if pid is not None:
            pcode = session.execute(select(k.parent_key).where(k.parent_table.c.id == pid)).scalar_one()
            out["parent"] = {"kind": k.parent, "code": pcode}
        out["history"] = [_link_dict(session, k, x) for x in _links(session, k.kind, node_id)]
    if what in as_parent:
        k = KINDS[as_parent[what]]
        out["children"] = sorted(
            session.execute(select(k.child_key).where(k.current == node_id)).scalars().all()
        )
    if what in BOUNDARY_KINDS:
        col = BoundaryMeter.dt_id if what == "dt" else BoundaryMeter.feeder_id
        rows = session.execute(
            select(Meter.serial, BoundaryMeter.valid_from, BoundaryMeter.valid_to)
            .join(Meter, Meter.id == BoundaryMeter.meter_id)
            .where(BoundaryMeter.kind == what, col == node_id)
            .order_by(BoundaryMeter.valid_from)
        ).all()
        out["boundary_meters"] = [
            {"meter": s, "from": f.isoformat(), "to": None if t is None else t.isoformat()}
            for s, f, t in rows
        ]
    return out


def _find_node(session: Session, code: str) -> tuple[str, int] | None:
    for what, tbl, key in (
        ("feeder", Feeder.__table__, Feeder.__table__.c.code),
        ("dt", DistributionTransformer.__table__, DistributionTransformer.__table__.c.code),
        ("dcu", DCU.__table__, DCU.__table__.c.code),
        ("meter", Meter.__table__, Meter.__table__.c.serial),
        ("service_point", SERVICE_POINT, SERVICE_POINT.c.code),
    ):
        found = session.execute(select(tbl.c.id).where(key == code)).scalar_one_or_none()
        if found is not None:
            return what, int(found)
    return None


def _link_dict(session: Session, k: LinkKind, x: NetworkLink) -> dict[str, Any]:
    pcode = session.execute(
        select(k.parent_key).where(k.parent_table.c.id == x.parent_id)
    ).scalar_one_or_none()
    return {
        "link": k.kind,
        "parent": pcode,
        "from": None if x.valid_from == SINCE_EVER else x.valid_from.isoformat(),
        "to": None if x.valid_to is None else x.valid_to.isoformat(),
        "source": x.source,
    }
