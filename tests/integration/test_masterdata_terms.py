"""Contract terms in master-data bundles (``terms`` of a service agreement), on SQLite and
PostgreSQL: load, update, refuse, export round-trip, and a load change recorded after a load."""

from __future__ import annotations

import copy
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import store_example_tariffs
from meter2cash.audit.models import AuditEntry
from meter2cash.cis.contracts.changes import change_load, terms_of
from meter2cash.cis.parties.models import ServiceAgreement
from meter2cash.integration.masterdata import export_bundle, load_bundle

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "masterdata"
TERMS = [
    {"effective_from": "2026-01-06", "sanctioned_load_kw": "25", "contract_demand_kva": "30"},
    {
        "effective_from": "2026-10-11",
        "sanctioned_load_kw": "40",
        "contract_demand_kva": "45",
        "reason": "extension",
    },
]


@pytest.fixture(autouse=True)
def tariffs(session) -> None:
    store_example_tariffs(session)
    session.commit()


def bundle(terms=None, **fields) -> dict:
    b = json.loads((EXAMPLES / "small.json").read_text())
    sa = b["service_agreements"][1]  # SA-1002, 25 kW / 30 kVA from 2026-01-06
    for k in ("sanctioned_load_kw", "contract_demand_kva"):
        sa.pop(k)
    sa.update(fields)
    if terms is not None:
        sa["terms"] = terms
    return b


def sa1002(session) -> ServiceAgreement:
    return session.scalars(select(ServiceAgreement).where(ServiceAgreement.number == "SA-1002")).one()


def test_terms_load_and_set_the_agreement_to_the_latest(session):
    r = load_bundle(session, bundle(TERMS))
    session.commit()
    assert r.problems == []
    sa = sa1002(session)
    assert (sa.sanctioned_load_kw, sa.contract_demand_kva) == (Decimal(40), Decimal(45))
    assert [(t.effective_from, t.sanctioned_kw, t.contract_kva, t.reason) for t in terms_of(session, sa)] == [
        (date(2026, 1, 6), Decimal(25), Decimal(30), ""),
        (date(2026, 10, 11), Decimal(40), Decimal(45), "extension"),
    ]
    # The same bundle again changes nothing; another history replaces the terms, audited.
    assert load_bundle(session, bundle(TERMS)).to_dict()["updated"] == 0
    fewer = [TERMS[0] | {"sanctioned_load_kw": "20"}]
    assert load_bundle(session, bundle(fewer)).to_dict()["updated"] == 1
    session.commit()
    assert [t.sanctioned_kw for t in terms_of(session, sa)] == [Decimal(20)]
    audit = session.scalars(
        select(AuditEntry).where(AuditEntry.entity_id == "SA-1002", AuditEntry.action == "masterdata.update")
    ).all()[-1]
    assert [t["sanctioned_load_kw"] for t in audit.before["terms"]] == ["25", "40"]
    assert audit.after["terms"][0]["sanctioned_load_kw"] == "20"


def test_terms_from_csv_text(session):
    r = load_bundle(session, bundle("2026-01-06:25:30; 2026-10-11:40:45"))
    session.commit()
    assert r.problems == [] and sa1002(session).sanctioned_load_kw == Decimal(40)


def test_bad_terms_are_refused(session):
    cases = [
        [{"effective_from": "2026-02-01", "sanctioned_load_kw": "25"}],  # not from start_date
        [TERMS[0], TERMS[0]],  # the same date twice
        [TERMS[0] | {"sanctioned_load_kw": "-1"}],
        [TERMS[0] | {"sanctioned_load_kw": 2.5}],
        [{"sanctioned_load_kw": "25"}],
        "2026-01-06",
    ]
    for terms in cases:
        r = load_bundle(session, bundle(terms))
        codes = [p.code for p in r.problems]
        assert codes and codes[0] in ("masterdata.invalid_terms", "masterdata.invalid_decimal"), terms
        assert r.problems[0].field == "terms"
    r = load_bundle(session, bundle(TERMS, sanctioned_load_kw="25"))
    assert [p.code for p in r.problems] == ["masterdata.invalid_terms"]
    assert "differs from the latest term" in r.problems[0].message


def test_export_round_trips_terms_and_a_later_load_change(session):
    assert load_bundle(session, bundle(sanctioned_load_kw="25", contract_demand_kva="30")).problems == []
    session.commit()
    change_load(session, "SA-1002", date(2026, 10, 11), "40", reason="extension", by="clerk")
    session.commit()
    exported = export_bundle(session)
    sa = next(r for r in exported["service_agreements"] if r["number"] == "SA-1002")
    assert sa["sanctioned_load_kw"] == "40" and [t["effective_from"] for t in sa["terms"]] == [
        "2026-01-06",
        "2026-10-11",
    ]
    assert "terms" not in exported["service_agreements"][0]
    again = load_bundle(session, copy.deepcopy(exported))
    assert again.problems == [] and again.to_dict()["updated"] == 0


def test_terms_name_loaded_tariffs_and_sane_loads(session):
    dated = [TERMS[0] | {"tariff_code": "COM-NOPE"}, TERMS[1] | {"tariff_code": "COM-TOU"}]
    r = load_bundle(session, bundle(dated))
    assert [(p.line, p.field, p.code, p.data) for p in r.problems] == [
        (2, "terms", "masterdata.unknown_tariff", {"tariff_code": "COM-NOPE"})
    ]
    huge = [TERMS[0], TERMS[1] | {"sanctioned_load_kw": "99999999999"}]
    r = load_bundle(session, bundle(huge))
    assert [(p.line, p.field, p.code) for p in r.problems] == [(2, "terms", "masterdata.out_of_range")]
    session.commit()
    assert session.scalars(select(ServiceAgreement.number).order_by(ServiceAgreement.number)).all() == [
        "SA-1001",
        "SA-1003",
    ]
    assert load_bundle(session, bundle([TERMS[0] | {"tariff_code": "RES-LT1"}, dated[1]])).problems == []
