"""Master-data bundles on SQLite and PostgreSQL: create, update, reject, CSV, zip, export round-trip."""

from __future__ import annotations

import copy
import json
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from conftest import store_example_tariffs
from meter2cash.audit.models import AuditEntry
from meter2cash.cis.parties.models import Account, ServiceAgreement, ServicePoint
from meter2cash.cis.tariffs.models import TariffVersion
from meter2cash.core.errors import InvalidInput, NotFound
from meter2cash.integration.masterdata import export_bundle, load_bundle, load_bundle_path
from meter2cash.mdm.models import Channel, DistributionTransformer, Installation, Meter, MeterStatusChange
from meter2cash.models import metadata

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "masterdata"


@pytest.fixture(autouse=True)
def tariffs(session) -> list[str]:
    """The example tariffs, which the bundles' agreements name, are loaded first."""
    codes = store_example_tariffs(session)
    session.commit()
    return codes


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
    store_example_tariffs(session)
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


# --- references, overlaps and ranges ------------------------------------------------------------


def agreement(number: str, sp: str, start: str, end: str | None = None, **more) -> dict:
    rec = {"number": number, "account": "ACC-1001", "service_point": sp, "tariff_code": "RES-LT1",
           "start_date": start, **more}  # fmt: skip
    return rec | ({"end_date": end} if end else {})


def agreements(session) -> dict[str, tuple]:
    rows = session.execute(
        select(
            ServiceAgreement.number, ServicePoint.code, ServiceAgreement.start_date, ServiceAgreement.end_date
        ).join(ServicePoint, ServicePoint.id == ServiceAgreement.service_point_id)
    )
    return {n: (sp, str(start), str(end) if end else None) for n, sp, start, end in rows}


def found(r) -> set[tuple]:
    return {(p.source, p.line, p.field, p.code) for p in r.problems}


def test_the_three_nonsense_records_are_reported_at_once_and_the_good_ones_kept(session):
    """An unknown tariff code, a second agreement on a service point in the same period and a
    sanctioned load of 99,999,999,999 kW: each record refused with its line, field and code."""
    b = small()
    b["service_agreements"][0]["tariff_code"] = "RES-NOPE"
    b["service_agreements"][2]["sanctioned_load_kw"] = "99999999999"
    b["service_agreements"].append(agreement("SA-1004", "SP-1002", "2026-03-01"))  # SP-1002: SA-1002's
    r = load_bundle(session, b)
    session.commit()
    assert found(r) == {
        ("service_agreements", 1, "tariff_code", "masterdata.unknown_tariff"),
        ("service_agreements", 3, "sanctioned_load_kw", "masterdata.out_of_range"),
        ("service_agreements", 4, "start_date", "masterdata.overlapping_agreement"),
    }
    overlap = next(p for p in r.problems if p.code == "masterdata.overlapping_agreement")
    assert overlap.data == {"service_point": "SP-1002", "agreement": "SA-1002", "start_date": "2026-01-06",
                            "end_date": None}  # fmt: skip
    assert r.counts["service_agreements"].rejected == 3 and r.counts["service_agreements"].created == 1
    assert agreements(session) == {"SA-1002": ("SP-1002", "2026-01-06", None)}
    assert r.counts["meters"].created == 3 and r.counts["installations"].created == 3


def test_an_agreement_must_name_a_loaded_tariff(session):
    for table in (TariffVersion.__table__,):
        session.execute(table.delete())
    session.commit()
    r = load_bundle(session, small())
    session.commit()
    assert {(p.line, p.code, p.data["tariff_code"]) for p in r.problems} == {
        (1, "masterdata.unknown_tariff", "RES-LT1"),
        (2, "masterdata.unknown_tariff", "COM-TOU"),
        (3, "masterdata.unknown_tariff", "RES-PP"),
    }
    assert r.counts["service_points"].created == 3 and agreements(session) == {}
    store_example_tariffs(session)
    session.commit()
    r = load_bundle(session, small())
    assert r.problems == [] and r.counts["service_agreements"].created == 3


def test_an_agreement_overlapping_a_stored_one_is_refused(session):
    load_bundle(session, small())
    session.commit()
    r = load_bundle(session, {"service_agreements": [agreement("SA-2001", "SP-1001", "2026-06-01")]})
    assert found(r) == {("service_agreements", 1, "start_date", "masterdata.overlapping_agreement")}
    assert "SA-1001" in r.problems[0].message and r.problems[0].data["agreement"] == "SA-1001"
    # ending the old one the same day the new one starts still shares that day
    same_day = [
        agreement("SA-1001", "SP-1001", "2026-01-05", "2026-06-01"),
        agreement("SA-2001", "SP-1001", "2026-06-01"),
    ]
    r = load_bundle(session, {"service_agreements": same_day})
    assert [(p.line, p.code) for p in r.problems] == [(2, "masterdata.overlapping_agreement")]


def test_a_replacement_is_accepted_when_the_bundle_ends_the_old_one_in_any_order(session):
    load_bundle(session, small())
    session.commit()
    replace = [
        agreement("SA-2001", "SP-1001", "2026-06-01"),
        agreement("SA-1001", "SP-1001", "2026-01-05", "2026-05-31"),
    ]
    r = load_bundle(session, {"service_agreements": replace})
    session.commit()
    assert r.problems == [] and (r.created, r.updated) == (1, 1)
    got = agreements(session)
    assert got["SA-1001"] == ("SP-1001", "2026-01-05", "2026-05-31") and got["SA-2001"] == (
        "SP-1001",
        "2026-06-01",
        None,
    )
    # a record that leaves end_date out keeps the stored one: still no overlap
    r = load_bundle(
        session,
        {"service_agreements": [agreement("SA-1001", "SP-1001", "2026-01-05", sanctioned_load_kw="6")]},
    )
    assert r.problems == [] and r.updated == 1


def test_a_replacement_whose_ending_is_refused_is_refused_too(session):
    load_bundle(session, small())
    session.commit()
    replace = [
        agreement("SA-2001", "SP-1001", "2026-06-01"),
        agreement("SA-1001", "SP-1001", "2026-01-05", "2026-05-31", tariff_code="RES-NOPE"),
    ]
    r = load_bundle(session, {"service_agreements": replace})
    assert {(p.line, p.code) for p in r.problems} == {
        (1, "masterdata.overlapping_agreement"),
        (2, "masterdata.unknown_tariff"),
    }
    # SA-1001's ending is refused for overlapping SA-2002 in February: the stored SA-1001 (open)
    # then overlaps both new agreements, which are refused in turn.
    cascade = [
        agreement("SA-2002", "SP-1001", "2026-02-01", "2026-02-28"),
        agreement("SA-2001", "SP-1001", "2026-06-01"),
        agreement("SA-1001", "SP-1001", "2026-01-05", "2026-05-31"),
    ]
    r = load_bundle(session, {"service_agreements": cascade})
    session.commit()
    assert [(p.line, p.code, p.data["agreement"]) for p in r.problems] == [
        (1, "masterdata.overlapping_agreement", "SA-1001"),
        (2, "masterdata.overlapping_agreement", "SA-1001"),
        (3, "masterdata.overlapping_agreement", "SA-2002"),
    ]
    assert agreements(session)["SA-1001"] == ("SP-1001", "2026-01-05", None) and "SA-2001" not in agreements(
        session
    )


def test_two_new_agreements_on_one_service_point_keep_the_first(session):
    b = small()
    b["service_agreements"] += [
        agreement("SA-2001", "SP-1001", "2025-01-01", "2025-12-31"),  # before SA-1001: fine
        agreement("SA-2002", "SP-1001", "2025-06-01", "2025-06-30"),  # inside SA-2001
    ]
    r = load_bundle(session, b)
    session.commit()
    assert [(p.line, p.code, p.data["agreement"]) for p in r.problems] == [
        (5, "masterdata.overlapping_agreement", "SA-2001")
    ]
    assert set(agreements(session)) == {"SA-1001", "SA-1002", "SA-1003", "SA-2001"}


def test_a_removal_moved_past_the_next_installation_is_refused(session):
    b = small()
    b["installations"][0]["removed_at"] = "2026-01-31T18:00:00+05:30"
    b["installations"].append(
        {"meter": "MTR-000101", "service_point": "SP-1003", "installed_at": "2026-02-01T10:00:00+05:30"}
    )
    b["installations"][2] |= {"removed_at": "2026-01-31T00:00:00+05:30"}  # MTR-000103 leaves SP-1003
    assert load_bundle(session, b).problems == []
    session.commit()
    later = {**b["installations"][0], "removed_at": "2026-03-01T00:00:00+05:30"}
    r = load_bundle(session, {"installations": [later]})
    session.commit()
    assert found(r) == {("installations", 1, "meter", "masterdata.overlapping_installation")}
    assert r.problems[0].data == {"service_point": "SP-1003"}
    first = session.scalar(select(Installation).order_by(Installation.installed_at).limit(1))
    assert first.removed_at.isoformat() == "2026-01-31T12:30:00+00:00"
