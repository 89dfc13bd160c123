"""The network hierarchy's history: dated links, late reports, duplicates, unknown codes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meter2cash.audit.models import AuditEntry
from meter2cash.cis.parties.models import Premise, ServicePoint
from meter2cash.core.errors import InvalidInput, NotFound
from meter2cash.mdm.models import DCU, DistributionTransformer, Feeder, Meter
from meter2cash.mdm.network import apply_network_change, assign_boundary_meter, describe_node, hierarchy_at
from meter2cash.mdm.network_models import BoundaryMeter, NetworkLink

T = datetime(2026, 10, 10, 6, 0, tzinfo=UTC)


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, tzinfo=UTC)


@pytest.fixture
def grid(session):
    """Feeders F1, F2; transformers DT1 (on F1), DT2 (on F1); DCU1 at DT1, DCU2 at DT2; meters SM1, SM2
    on DCU1; service point SP1 at DT1."""
    f1, f2 = Feeder(code="F1"), Feeder(code="F2")
    session.add_all([f1, f2])
    session.flush()
    dt1, dt2 = (
        DistributionTransformer(code="DT1", feeder_id=f1.id),
        DistributionTransformer(code="DT2", feeder_id=f1.id),
    )
    session.add_all([dt1, dt2])
    session.flush()
    d1, d2 = DCU(code="DCU1", dt_id=dt1.id), DCU(code="DCU2", dt_id=dt2.id)
    session.add_all([d1, d2])
    session.flush()
    m1, m2 = Meter(serial="SM1", dcu_id=d1.id), Meter(serial="SM2", dcu_id=d1.id)
    premise = Premise(code="PR1")
    session.add_all([m1, m2, premise])
    session.flush()
    sp = ServicePoint(code="SP1", premise_id=premise.id, dt_id=dt1.id)
    session.add(sp)
    session.flush()
    return {"F1": f1.id, "F2": f2.id, "DT1": dt1.id, "DT2": dt2.id, "DCU1": d1.id, "DCU2": d2.id,
            "SM1": m1.id, "SM2": m2.id, "SP1": sp.id}  # fmt: skip


def test_a_meter_moving_dcu_keeps_its_history(session, grid):
    assert apply_network_change(session, link="meter_dcu", child="SM1", parent="DCU2", effective_at=T) is True
    session.commit()
    assert session.get(Meter, grid["SM1"]).dcu_id == grid["DCU2"]
    assert hierarchy_at(session, at(9)).meter_dcu[grid["SM1"]] == grid["DCU1"]
    assert hierarchy_at(session, T).meter_dcu[grid["SM1"]] == grid["DCU2"]
    assert hierarchy_at(session, at(20)).meter_dcu[grid["SM1"]] == grid["DCU2"]
    # the other meter has no recorded link: its current DCU holds at every time
    assert hierarchy_at(session, at(1)).meter_dcu[grid["SM2"]] == grid["DCU1"]
    links = (
        session.query(NetworkLink)
        .filter_by(kind="meter_dcu", child_id=grid["SM1"])
        .order_by(NetworkLink.valid_from)
        .all()
    )
    assert [(x.parent_id, x.valid_to) for x in links] == [(grid["DCU1"], T), (grid["DCU2"], None)]


def test_the_same_change_again_changes_nothing(session, grid):
    assert apply_network_change(session, link="meter_dcu", child="SM1", parent="DCU2", effective_at=T)
    assert (
        apply_network_change(session, link="meter_dcu", child="SM1", parent="DCU2", effective_at=T) is False
    )
    # later, still below DCU2: already known
    assert (
        apply_network_change(session, link="meter_dcu", child="SM1", parent="DCU2", effective_at=at(12))
        is False
    )
    # before the move it hung below DCU1
    assert (
        apply_network_change(session, link="meter_dcu", child="SM1", parent="DCU1", effective_at=at(5))
        is False
    )
    assert session.query(NetworkLink).filter_by(kind="meter_dcu").count() == 2


def test_a_late_report_takes_its_place_in_history(session, grid):
    apply_network_change(session, link="service_point_dt", child="SP1", parent="DT2", effective_at=at(20))
    # reported later: the service point had moved to DT2 already on the 10th
    assert apply_network_change(
        session, link="service_point_dt", child="SP1", parent="DT2", effective_at=at(10)
    )
    rows = (
        session.query(NetworkLink).filter_by(kind="service_point_dt").order_by(NetworkLink.valid_from).all()
    )
    assert [(r.parent_id, r.valid_from, r.valid_to) for r in rows][1:] == [(grid["DT2"], at(10), None)]
    # an old move back to DT1 between the 12th and the 15th, reported late
    apply_network_change(session, link="service_point_dt", child="SP1", parent="DT1", effective_at=at(12))
    apply_network_change(session, link="service_point_dt", child="SP1", parent="DT2", effective_at=at(15))
    assert hierarchy_at(session, at(11)).service_point_dt[grid["SP1"]] == grid["DT2"]
    assert hierarchy_at(session, at(13)).service_point_dt[grid["SP1"]] == grid["DT1"]
    assert hierarchy_at(session, at(16)).service_point_dt[grid["SP1"]] == grid["DT2"]
    assert hierarchy_at(session, at(9)).service_point_dt[grid["SP1"]] == grid["DT1"]
    session.commit()
    assert session.get(ServicePoint, grid["SP1"]).dt_id == grid["DT2"]


def test_transformer_moves_feeder_and_the_hierarchy_follows(session, grid):
    apply_network_change(session, link="dt_feeder", child="DT1", parent="F2", effective_at=T, source="cli")
    before, after = hierarchy_at(session, at(9)), hierarchy_at(session, at(11))
    assert before.by_feeder() == {grid["F1"]: [grid["SP1"]]}
    assert after.by_feeder() == {grid["F2"]: [grid["SP1"]]}
    assert after.dts_of(grid["F1"]) == [grid["DT2"]]
    assert after.service_points_of(grid["DT1"]) == [grid["SP1"]]
    session.commit()
    assert session.get(DistributionTransformer, grid["DT1"]).feeder_id == grid["F2"]


def test_unknown_codes_and_links_are_refused(session, grid):
    with pytest.raises(NotFound) as e:
        apply_network_change(session, link="meter_dcu", child="NOPE", parent="DCU2", effective_at=T)
    assert e.value.code == "network.unknown_child"
    with pytest.raises(NotFound) as e:
        apply_network_change(session, link="meter_dcu", child="SM1", parent="DCU9", effective_at=T)
    assert e.value.code == "network.unknown_parent"
    with pytest.raises(InvalidInput) as e2:
        apply_network_change(session, link="meter_feeder", child="SM1", parent="F1", effective_at=T)
    assert e2.value.code == "network.unknown_link"
    assert session.query(NetworkLink).count() == 0


def test_a_staff_change_is_audited_and_described(session, grid):
    apply_network_change(
        session, link="meter_dcu", child="SM1", parent="DCU2", effective_at=T, source="cli", actor="ops"
    )
    entry = session.query(AuditEntry).filter_by(action="network.change").one()
    assert (entry.actor, entry.entity, entry.entity_id) == ("ops", "meter_dcu", "SM1")
    shown = describe_node(session, "SM1")
    assert shown["kind"] == "meter" and shown["parent"] == {"kind": "dcu", "code": "DCU2"}
    assert [(h["parent"], h["from"], h["to"]) for h in shown["history"]] == [
        ("DCU1", None, T.isoformat()),
        ("DCU2", T.isoformat(), None),
    ]
    assert describe_node(session, "DCU1")["children"] == ["SM2"]
    with pytest.raises(NotFound):
        describe_node(session, "X")


def test_boundary_meter_assignment_replaces_the_earlier_one(session, grid):
    first = assign_boundary_meter(session, serial="SM1", dt="DT1", at=at(1))
    assert assign_boundary_meter(session, serial="SM1", dt="DT1", at=at(2)).id == first.id
    second = assign_boundary_meter(session, serial="SM2", dt="DT1", at=at(5))
    assert first.valid_to == at(5) and second.valid_to is None
    assert session.query(BoundaryMeter).count() == 2
    with pytest.raises(InvalidInput):
        assign_boundary_meter(session, serial="SM1", dt="DT1", feeder="F1", at=at(1))
    assert describe_node(session, "DT1")["boundary_meters"][1]["meter"] == "SM2"


def test_a_report_of_the_parent_already_current_records_nothing(session, grid):
    assert (
        apply_network_change(session, link="meter_dcu", child="SM2", parent="DCU1", effective_at=T) is False
    )
    session.commit()
    assert session.query(NetworkLink).count() == 0


def test_a_head_end_change_is_audited_under_its_source(session, grid):
    apply_network_change(
        session, link="dt_feeder", child="DT2", parent="F2", effective_at=T, source="hes-north"
    )
    entry = session.query(AuditEntry).filter_by(action="network.change").one()
    assert (entry.actor, entry.entity_id, entry.after["parent"]) == ("hes-north", "DT2", "F2")
