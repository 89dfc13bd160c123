"""Master-data bundles on SQLite and PostgreSQL: create, update, reject, CSV, zip, export round-trip."""

from __future__ import annotations

import copy
import json
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from meter2cash.cis.models import Account, ServiceAgreement, ServicePoint
from meter2cash.core.errors import InvalidInput, NotFound
from meter2cash.integration.masterdata import export_bundle, load_bundle, load_bundle_path
from meter2cash.integration.models import AuditEntry
from meter2cash.mdm.models import Channel, DistributionTransformer, Installation, Meter, MeterStatusChange
from meter2cash.models import metadata

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "masterdata"


def small() -> dict:
    return json.loads((EXAMPLES / "small.json").read_text())


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_small_bundle_creates_everything_with_audit_and_lifecycle(session):
    r = load_bundle(session, small(), actor="tester")
    session.commit()
    assert r.rejected == 0 and r.problems == []
    assert {k: c.created for k, c in r.counts.items()} == {
        "feeders": 1, "transformers": 2, "dcus": 1, "persons": 3, "accounts": 3, "premises": 3,
        "service_points": 3, "meters": 3, "installations": 3, "service_agreements": 3,
    }  # fmt: skip
    assert count(session, AuditEntry) == 25
    assert count(session, Channel) == 6
    m = session.scalar(select(Meter).where(Meter.serial == "MTR-000101"))
    assert m.status == "installed"
    moves = session.execute(select(MeterStatusChange.from_status, MeterStatusChange.to_status)).all()
    assert sorted(moves) == [("in_stock", "installed")] * 3
    sa = session.scalar(select(ServiceAgreement).where(ServiceAgreement.number == "SA-1002"))
    assert (sa.tariff_code, sa.contract_demand_kva, sa.account.number) == ("COM-TOU", Decimal(30), "ACC-1002")
    audit = session.scalar(select(AuditEntry).where(AuditEntry.entity_id == "SA-1003"))
    assert audit.actor == "tester" and audit.before is None and audit.after["payment_mode"] == "prepaid"


def test_loading_again_changes_only_what_changed(session):
    load_bundle(session, small())
    session.commit()
    assert load_bundle(session, small()).to_dict()["created"] == 0
    b = small()
    b["transformers"][0]["capacity_kva"] = "315"
    b["service_points"][2]["transformer"] = "DT-0102"
    b["meters"][0]["channels"][0]["multiplier"] = "2"
    r = load_bundle(session, b)
    session.commit()
    assert (r.created, r.updated, r.rejected) == (0, 3, 0)
    assert {k for k, c in r.counts.items() if c.updated} == {"transformers", "service_points", "meters"}
    dt = session.scalar(select(DistributionTransformer).where(DistributionTransformer.code == "DT-0101"))
    assert dt.capacity_kva == Decimal(315)
    sp = session.scalar(select(ServicePoint).where(ServicePoint.code == "SP-1003"))
    assert sp.dt_id != dt.id
    upd = session.scalar(
        select(AuditEntry).where(AuditEntry.action == "masterdata.update", AuditEntry.entity_id == "DT-0101")
    )
    assert upd.before == {"capacity_kva": "250"} and upd.after == {"capacity_kva": "315"}
    meter_audit = session.scalar(
        select(AuditEntry).where(AuditEntry.action == "masterdata.update", AuditEntry.entity == "meter")
    )
    assert meter_audit.after["channels"][0] == {"reading_type": "kwh_import_15m", "multiplier": "2"}


def test_bad_records_are_reported_and_good_ones_kept(session):
    b = small()
    b["transformers"][1]["feeder"] = "FDR-NOPE"  # unknown → DT-0102 rejected
    b["persons"][2]["name"] = ""  # missing → P-0003 rejected → ACC-1003 → SA-1003 rejected
    b["service_agreements"][0]["payment_mode"] = "barter"
    r = load_bundle(session, b)
    session.commit()
    got = {(p.source, p.line, p.field, p.code) for p in r.problems}
    assert got == {
        ("transformers", 2, "feeder", "masterdata.unknown_reference"),
        ("persons", 3, "name", "masterdata.missing_field"),
        ("accounts", 3, "person", "masterdata.unresolved_reference"),
        ("service_points", 2, "transformer", "masterdata.unresolved_reference"),
        ("installations", 2, "service_point", "masterdata.unresolved_reference"),
        ("service_agreements", 1, "payment_mode", "masterdata.invalid_choice"),
        ("service_agreements", 2, "service_point", "masterdata.unresolved_reference"),
        ("service_agreements", 3, "account", "masterdata.unresolved_reference"),
    }
    assert r.rejected == 8
    assert sorted(session.scalars(select(Account.number))) == ["ACC-1001", "ACC-1002"]
    assert list(session.scalars(select(ServiceAgreement.number))) == []
    assert count(session, Installation) == 2


def test_references_resolve_against_the_database(session):
    load_bundle(session, small())
    session.commit()
    later = {
        "service_points": [{"code": "SP-2001", "premise": "PR-1001", "transformer": "DT-0102"}],
        "service_agreements": [
            {"number": "SA-2001", "account": "ACC-1001", "service_point": "SP-2001", "tariff_code": "RES-LT1",
             "start_date": "2026-03-01"},
            {"number": "SA-2002", "account": "ACC-9999", "service_point": "SP-2001", "tariff_code": "RES-LT1",
             "start_date": "2026-03-01"},
        ],
    }  # fmt: skip
    r = load_bundle(session, later)
    session.commit()
    assert r.created == 2
    assert [(p.line, p.code) for p in r.problems] == [(2, "masterdata.unknown_reference")]


def test_meter_installed_elsewhere_is_refused_until_removed(session):
    load_bundle(session, small())
    session.commit()
    move = {"meter": "MTR-000101", "service_point": "SP-1003", "installed_at": "2026-02-01T10:00:00+05:30"}
    r = load_bundle(session, {"installations": [move]})
    assert [(p.code, p.line) for p in r.problems] == [("masterdata.meter_already_installed", 1)]
    assert r.problems[0].data["service_point"] == "SP-1001"
    removal = {
        **small()["installations"][0],
        "removed_at": "2026-01-31T18:00:00+05:30",
        "removal_read_kwh": "80",
    }
    r = load_bundle(session, {"installations": [removal, move]})
    session.commit()
    assert r.problems == [] and (r.updated, r.created) == (1, 1)
    m = session.scalar(select(Meter).where(Meter.serial == "MTR-000101"))
    assert m.status == "installed"
    moves = session.execute(
        select(MeterStatusChange.from_status, MeterStatusChange.to_status)
        .where(MeterStatusChange.meter_id == m.id)
        .order_by(MeterStatusChange.at)
    ).all()
    assert moves == [("in_stock", "installed"), ("installed", "removed"), ("removed", "installed")]


def test_duplicate_keys_keep_the_first(session):
    b = {"feeders": [{"code": "F1", "name": "first"}, {"code": "F1", "name": "second"}]}
    r = load_bundle(session, b)
    assert [(p.code, p.line, p.data) for p in r.problems] == [
        ("masterdata.duplicate_key", 2, {"first_line": 1})
    ]
    assert r.counts["feeders"].created == 1


def test_csv_directory_and_zip_equal_the_json_bundle(session, tmp_path):
    r = load_bundle_path(session, EXAMPLES / "csv")
    session.commit()
    assert r.created == 25 and r.problems == []
    from_csv = export_bundle(session)
    assert load_bundle_path(session, EXAMPLES / "small.json").created == 0
    assert export_bundle(session) == from_csv
    zpath = tmp_path / "bundle.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted((EXAMPLES / "csv").glob("*.csv")):
            zf.write(f, f"bundle/{f.name}")
    r = load_bundle_path(session, zpath)
    assert (r.created, r.updated, r.unchanged) == (0, 0, 25)


def test_csv_problems_carry_file_name_and_line(session, tmp_path):
    (tmp_path / "feeders.csv").write_text("code,name,substation\nF1,North,S1\n,Nameless,S2\n")
    (tmp_path / "gizmos.csv").write_text("code\nX\n")
    r = load_bundle_path(session, tmp_path)
    assert {(p.source, p.line, p.field, p.code) for p in r.problems} == {
        ("feeders.csv", 3, "code", "masterdata.missing_field"),
        ("gizmos.csv", None, None, "masterdata.unknown_entity"),
    }


def test_export_round_trips_into_an_empty_database(session):
    b = small()
    b["installations"][0]["removed_at"] = "2026-02-01T00:00:00Z"
    load_bundle(session, b)
    session.commit()
    exported = export_bundle(session)
    assert exported["installations"][0]["removed_at"] == "2026-02-01T00:00:00+00:00"
    assert load_bundle(session, copy.deepcopy(exported)).to_dict()["updated"] == 0
    for table in reversed(metadata.sorted_tables):
        session.execute(table.delete())
    session.commit()
    r = load_bundle(session, exported)
    session.commit()
    assert r.problems == [] and r.counts["installations"].created == 3
    assert export_bundle(session) == exported


def test_unreadable_bundles_are_fatal_errors(session, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        load_bundle_path(session, bad)
    with pytest.raises(NotFound):
        load_bundle_path(session, tmp_path / "missing.json")
    with pytest.raises(InvalidInput):
        load_bundle(session, [1, 2])  # type: ignore[arg-type]
