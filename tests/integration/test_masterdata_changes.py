"""A master-data bundle that changes an agreement's payment mode or tariff, on SQLite and
PostgreSQL: a dated change with its settlement, never a silent flip."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from conftest import store_example_tariffs
from meter2cash.cis.ledger.journal import account_balance
from meter2cash.cis.parties.models import ContractTerm, ServiceAgreement
from meter2cash.cis.payments.receipts import receive
from meter2cash.cis.prepaid.models import Wallet
from meter2cash.cis.prepaid.wallet import wallet_balance
from meter2cash.integration.masterdata import load_bundle
from meter2cash.integration.masterdata_loader import Utility
from meter2cash.mdm.usage.local import LocalUsage

BUNDLE = json.loads((Path(__file__).resolve().parents[2] / "examples/masterdata/small.json").read_text())
UTILITY = Utility("Asia/Kolkata", "INR", LocalUsage)
D = Decimal


def loaded(session) -> dict:
    store_example_tariffs(session)
    result = load_bundle(session, BUNDLE, utility=UTILITY)
    assert result.problems == []
    return copy.deepcopy(BUNDLE)


def agreement(bundle: dict, number: str) -> dict:
    return next(a for a in bundle["service_agreements"] if a["number"] == number)


def test_a_bare_change_of_mode_or_tariff_is_refused_and_the_rest_kept(session):
    bundle = loaded(session)
    agreement(bundle, "SA-1001")["payment_mode"] = "prepaid"
    agreement(bundle, "SA-1002")["tariff_code"] = "RES-LT1"
    agreement(bundle, "SA-1003")["sanctioned_load_kw"] = "4"
    result = load_bundle(session, {"service_agreements": bundle["service_agreements"]}, utility=UTILITY)
    assert sorted((p.code, p.field) for p in result.problems) == [
        ("masterdata.undated_change", "payment_mode"),
        ("masterdata.undated_change", "tariff_code"),
    ]
    rows = {sa.number: sa for sa in session.scalars(select(ServiceAgreement))}
    assert (rows["SA-1001"].payment_mode, rows["SA-1002"].tariff_code) == ("postpaid", "COM-TOU")
    assert rows["SA-1003"].sanctioned_load_kw == D("4")  # a good record in the same bundle is kept


def test_a_dated_mode_change_in_the_terms_settles_like_the_command(session):
    bundle = loaded(session)
    acct = session.scalar(select(ServiceAgreement.account_id).where(ServiceAgreement.number == "SA-1001"))
    receive(session, acct, D("300.00"), channel="cash", currency="INR")  # credit on receivables
    first = UTILITY.today().replace(day=1)
    agreement(bundle, "SA-1001").pop("payment_mode")
    agreement(bundle, "SA-1001")["terms"] = [
        {"effective_from": "2026-01-05", "sanctioned_load_kw": "5", "payment_mode": "postpaid"},
        {"effective_from": first.isoformat(), "sanctioned_load_kw": "5", "payment_mode": "prepaid"},
    ]
    result = load_bundle(session, {"service_agreements": bundle["service_agreements"]}, utility=UTILITY)
    assert result.problems == []
    sa = session.scalar(select(ServiceAgreement).where(ServiceAgreement.number == "SA-1001"))
    assert sa.payment_mode == "prepaid"
    terms = session.scalars(select(ContractTerm).where(ContractTerm.service_agreement_id == sa.id)).all()
    assert [(t.effective_from, t.payment_mode) for t in sorted(terms, key=lambda t: t.effective_from)] == [
        (first.replace(year=2026, month=1, day=5), "postpaid"),
        (first, "prepaid"),
    ]
    wallet = session.scalars(select(Wallet).where(Wallet.service_agreement_id == sa.id)).one()
    assert wallet_balance(session, wallet) == D("300.00") and account_balance(session, acct) == 0
    # loading the same bundle again changes nothing and settles nothing twice
    again = load_bundle(session, {"service_agreements": bundle["service_agreements"]}, utility=UTILITY)
    assert again.problems == [] and wallet_balance(session, wallet) == D("300.00")


def test_a_mode_change_dated_in_the_future_is_refused(session):
    bundle = loaded(session)
    later = UTILITY.today() + timedelta(days=10)
    agreement(bundle, "SA-1001").pop("payment_mode")
    agreement(bundle, "SA-1001")["terms"] = [
        {"effective_from": "2026-01-05", "sanctioned_load_kw": "5", "payment_mode": "postpaid"},
        {"effective_from": later.isoformat(), "sanctioned_load_kw": "5", "payment_mode": "prepaid"},
    ]
    result = load_bundle(session, {"service_agreements": bundle["service_agreements"]}, utility=UTILITY)
    assert [p.code for p in result.problems] == ["masterdata.mode_change_in_future"]
    sa = session.scalar(select(ServiceAgreement).where(ServiceAgreement.number == "SA-1001"))
    assert sa.payment_mode == "postpaid"
    assert session.scalars(select(ContractTerm).where(ContractTerm.service_agreement_id == sa.id)).all() == []


def test_a_dated_tariff_change_in_the_terms_is_written(session):
    bundle = loaded(session)
    agreement(bundle, "SA-1001")["tariff_code"] = "COM-TOU"  # the record states the latest term
    agreement(bundle, "SA-1001")["terms"] = [
        {"effective_from": "2026-01-05", "sanctioned_load_kw": "5", "tariff_code": "RES-LT1"},
        {"effective_from": "2027-01-01", "sanctioned_load_kw": "5", "tariff_code": "COM-TOU"},
    ]
    result = load_bundle(session, {"service_agreements": bundle["service_agreements"]}, utility=UTILITY)
    assert result.problems == []
    sa = session.scalar(select(ServiceAgreement).where(ServiceAgreement.number == "SA-1001"))
    assert sa.tariff_code == "COM-TOU"  # the latest term, as for loads
    terms = session.scalars(select(ContractTerm).where(ContractTerm.service_agreement_id == sa.id)).all()
    assert sorted((t.effective_from.isoformat(), t.tariff_code) for t in terms) == [
        ("2026-01-05", "RES-LT1"),
        ("2027-01-01", "COM-TOU"),
    ]
