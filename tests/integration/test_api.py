"""The REST API through TestClient on SQLite and PostgreSQL: every endpoint, errors, auth, readings."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from meter2cash.api import create_app
from meter2cash.cis.billing.models import Bill, BillLine
from meter2cash.cis.ledger.models import JournalEntry, JournalLine, LedgerAccount
from meter2cash.cis.parties.models import Account, ServiceAgreement
from meter2cash.cis.tariffs.loader import load_tariff_file, store_tariff
from meter2cash.integration.masterdata import load_bundle

with warnings.catch_warnings():  # the test client warns about its httpx transport on import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BUNDLE = json.loads((EXAMPLES / "masterdata/small.json").read_text())
V1 = "/api/v1"


def load_tariffs(session) -> None:
    """The example tariffs, which the example bundle's agreements are on."""
    for path in sorted((EXAMPLES / "tariffs").glob("*.toml")):
        store_tariff(session, load_tariff_file(path), path.read_text())
    session.commit()


def load_examples(session) -> None:
    """The example tariffs and master data, committed."""
    load_tariffs(session)
    result = load_bundle(session, BUNDLE, actor="test")
    assert not result.rejected, result.to_dict()["problems"]
    session.commit()


@pytest.fixture
def client(platform):
    with platform.sessions() as s:
        load_tariffs(s)
    with TestClient(create_app(platform)) as c:
        yield c


@pytest.fixture
def loaded(client):
    r = client.post(f"{V1}/masterdata", json=BUNDLE)
    assert r.status_code == 200, r.text
    return client


def error(r, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "data"}
    return body["error"]


def test_health_reports_revision_and_version(client):
    body = client.get(f"{V1}/health").json()
    assert body["status"] == "ok" and body["database_revision"] == body["code_revision"] is not None
    assert body["version"]


def test_masterdata_post_partial_and_total_rejection(client):
    r = client.post(f"{V1}/masterdata", json=BUNDLE)
    assert r.status_code == 200 and r.json()["created"] == 25
    partial = {"feeders": [{"code": "F9"}, {"name": "no code"}]}
    r = client.post(f"{V1}/masterdata", json=partial)
    assert r.status_code == 200
    assert [(p["line"], p["field"], p["code"]) for p in r.json()["problems"]] == [
        (2, "code", "masterdata.missing_field")
    ]
    err = error(client.post(f"{V1}/masterdata", json={"feeders": [{"name": "x"}]}), 422)
    assert err["code"] == "masterdata.rejected" and err["data"]["rejected"] == 1
    err = error(client.post(f"{V1}/masterdata", json=[1, 2]), 422)
    assert err["code"] == "api.invalid_request" and err["data"]["errors"][0]["loc"] == ["body"]


def test_accounts_list_filter_paginate_and_detail(loaded, platform):
    page = loaded.get(f"{V1}/accounts", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 3 and [a["number"] for a in page["items"]] == ["ACC-1002", "ACC-1003"]
    com = loaded.get(f"{V1}/accounts", params={"customer_class": "commercial"}).json()
    assert [a["number"] for a in com["items"]] == ["ACC-1002"]
    assert loaded.get(f"{V1}/accounts", params={"status": "closed"}).json()["total"] == 0
    acc = loaded.get(f"{V1}/accounts/ACC-1003").json()
    assert acc["person"]["name"] == "Vikram Shetty" and acc["balance"] is None
    assert [(s["number"], s["payment_mode"], s["tariff_code"]) for s in acc["service_agreements"]] == [
        ("SA-1003", "prepaid", "RES-PP")
    ]
    with platform.sessions() as s:
        acc_id = s.scalar(select(Account.id).where(Account.number == "ACC-1003"))
        s.add(LedgerAccount(code="1100", name="Receivables", type="asset"))
        s.add(LedgerAccount(code="4000", name="Revenue", type="revenue"))
        entry = JournalEntry(effective_date=date(2026, 2, 1), kind="bill")
        entry.lines = [
            JournalLine(
                ledger_account="1100", account_id=acc_id, amount=Decimal("1234.5600"), currency="INR"
            ),
            JournalLine(
                ledger_account="4000", account_id=acc_id, amount=Decimal("-1234.5600"), currency="INR"
            ),
            JournalLine(ledger_account="1100", account_id=acc_id, amount=Decimal("-200"), currency="INR"),
        ]
        s.add(entry)
        s.commit()
    acc = loaded.get(f"{V1}/accounts/ACC-1003").json()
    assert acc["balance"] == "1034.56" and acc["currency"] == "INR"  # minor units, not 1034.5600
    err = error(loaded.get(f"{V1}/accounts/ACC-NOPE"), 404)
    assert err["code"] == "account.not_found"


def test_service_points_and_meters(loaded):
    sps = loaded.get(f"{V1}/service-points", params={"transformer": "DT-0101"}).json()
    assert [s["code"] for s in sps["items"]] == ["SP-1001", "SP-1003"]
    sp = loaded.get(f"{V1}/service-points/SP-1002").json()
    assert sp["transformer"]["feeder"] == "FDR-11KV-01" and sp["meter"]["serial"] == "MTR-000102"
    assert sp["meter"]["installed_at"] == "2026-01-06T05:30:00Z"
    assert [a["number"] for a in sp["agreements"]] == ["SA-1002"]
    assert error(loaded.get(f"{V1}/service-points/SP-X"), 404)["code"] == "service_point.not_found"
    meters = loaded.get(f"{V1}/meters", params={"limit": 1, "offset": 2}).json()
    assert meters["total"] == 3 and [m["serial"] for m in meters["items"]] == ["MTR-000103"]
    m = loaded.get(f"{V1}/meters/MTR-000101").json()
    assert m["status"] == "installed" and m["dcu"] == "DCU-0101"
    assert [(c["reading_type"], c["interval_s"]) for c in m["channels"]] == [
        ("kwh_import_15m", 900),
        ("kwh_import_register", None),
    ]
    assert [i["service_point"] for i in m["installations"]] == ["SP-1001"]
    assert [(h["from_status"], h["to_status"]) for h in m["status_history"]] == [("in_stock", "installed")]
    assert error(loaded.get(f"{V1}/meters/NOPE"), 404)["code"] == "meter.not_found"


def test_validation_errors_name_the_field(client):
    err = error(client.get(f"{V1}/accounts", params={"limit": 0}), 422)
    assert err["code"] == "api.invalid_request" and err["data"]["errors"][0]["loc"] == ["query", "limit"]
    assert error(client.get("/api/v1/nothing-here"), 404)["code"] == "api.not_found"


READ_URL = f"{V1}/meters/MTR-000101/readings"
WINDOW = {"channel": "kwh_import_15m", "start": "2026-02-01T00:00:00Z", "end": "2026-02-01T01:00:00Z"}


def test_post_readings_json_and_csv_then_read_them_back(loaded):
    doc = {
        "readings": [
            {"meter": "MTR-000101", "channel": "kwh_import_15m", "start": "2026-02-01T05:30:00+05:30",
             "interval_s": 900, "values": [0.25, 0.5]},
        ]
    }  # fmt: skip
    r = loaded.post(f"{V1}/readings", content=json.dumps(doc), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["intervals_new"] == 2
    csv_body = "meter,channel,start,value\nMTR-000101,kwh_import_15m,2026-02-01T00:30:00Z,0.75\n"
    csv_body += "NOPE,kwh_import_15m,2026-02-01T00:45:00Z,1\n"
    r = loaded.post(f"{V1}/readings", content=csv_body, headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json()["rows_accepted"] == 1 and r.json()["problems"][0]["line"] == 3
    got = loaded.get(READ_URL, params=WINDOW).json()
    assert got["starts"] == [
        "2026-02-01T00:00:00Z",
        "2026-02-01T00:15:00Z",
        "2026-02-01T00:30:00Z",
        "2026-02-01T00:45:00Z",
    ]
    assert got["values"] == ["0.25", "0.5", "0.75", None]
    assert got["quality"] == ["RAW", "RAW", "RAW", "MISSING"] and got["flags"][3] == 1


def test_post_readings_rejections_and_media_types(loaded):
    bad = "meter,channel,start,value\nNOPE,kwh_import_15m,2026-02-01T00:45:00Z,1\n"
    err = error(loaded.post(f"{V1}/readings", content=bad, headers={"content-type": "text/csv"}), 422)
    assert err["code"] == "ingest.rejected" and err["data"]["rows_rejected"] == 1
    err = error(loaded.post(f"{V1}/readings", content="x", headers={"content-type": "text/plain"}), 415)
    assert err["code"] == "api.unsupported_media_type"


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({**WINDOW, "start": "2026-02-01T00:00:00"}, 422, "readings.naive_timestamp"),
        ({**WINDOW, "end": "2027-03-01T00:00:00Z"}, 422, "readings.window_too_large"),
        ({**WINDOW, "end": "2026-01-01T00:00:00Z"}, 422, "readings.invalid_window"),
        ({**WINDOW, "start": "2026-02-01T00:05:00Z"}, 422, "readings.misaligned_window"),
        ({**WINDOW, "channel": "kwh_import_register"}, 422, "readings.not_interval_channel"),
        ({**WINDOW, "channel": "kvah_import_15m"}, 404, "channel.not_found"),
    ],
)
def test_reading_window_errors(loaded, params, status, code):
    assert error(loaded.get(READ_URL, params=params), status)["code"] == code


@pytest.fixture
def billed(loaded, platform):
    with platform.sessions() as s:
        sa = s.scalar(select(ServiceAgreement).where(ServiceAgreement.number == "SA-1001"))
        bill = Bill(
            number="B-2026-02-0001", service_agreement_id=sa.id, account_id=sa.account_id, period="2026-02",
            period_start=datetime(2026, 1, 31, 18, 30, tzinfo=UTC),
            period_end=datetime(2026, 2, 28, 18, 30, tzinfo=UTC),
            tariff_code="RES-LT1", currency="INR", total_kwh=Decimal("123.5"), subtotal=Decimal("900"),
            tax=Decimal("45"), total=Decimal("945"), determinants={"kwh": "123.5"},
        )  # fmt: skip
        bill.lines = [
            BillLine(seq=1, component="fixed", description="Fixed charge", amount=Decimal("100"),
                     ledger_account="4000"),
            BillLine(seq=2, component="energy", description="Energy", quantity=Decimal("123.5"), unit="kWh",
                     rate=Decimal("6.477733"), amount=Decimal("800"), ledger_account="4000"),
        ]  # fmt: skip
        s.add(bill)
        s.commit()
    return loaded


def test_bills_list_detail_and_not_found(billed):
    page = billed.get(f"{V1}/bills", params={"account": "ACC-1001", "period": "2026-02"}).json()
    assert page["total"] == 1 and page["items"][0]["total"] == "945.00"
    assert billed.get(f"{V1}/bills", params={"account": "ACC-1002"}).json()["total"] == 0
    bill = billed.get(f"{V1}/bills/B-2026-02-0001").json()
    assert [line["component"] for line in bill["lines"]] == ["fixed", "energy"]
    assert bill["determinants"] == {"kwh": "123.5"} and bill["service_agreement"] == "SA-1001"
    assert error(billed.get(f"{V1}/bills/NOPE"), 404)["code"] == "bill.not_found"
    assert error(billed.get(f"{V1}/bills/NOPE.html"), 404)["code"] == "bill.not_found"


def test_bill_html(billed):
    import meter2cash.cis.billing.documents  # noqa: F401  (an import error is a failure, never a skip)

    r = billed.get(f"{V1}/bills/B-2026-02-0001.html")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "B-2026-02-0001" in r.text


def test_api_keys_guard_everything_but_health(platform):
    platform.settings = platform.settings.model_copy(update={"api_keys": "k1, k2"})
    with TestClient(create_app(platform)) as c:
        assert c.get(f"{V1}/health").status_code == 200
        assert error(c.get(f"{V1}/accounts"), 401)["code"] == "auth.missing_key"
        assert (
            error(c.get(f"{V1}/accounts", headers={"X-API-Key": "nope"}), 401)["code"] == "auth.invalid_key"
        )
        assert c.get(f"{V1}/accounts", headers={"X-API-Key": "k2"}).status_code == 200
        r = c.post(f"{V1}/masterdata", json={"feeders": [{"code": "F1"}]}, headers={"X-API-Key": "k1"})
        assert r.status_code == 200


def test_openapi_lists_the_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/accounts/{number}", "/api/v1/readings", "/api/v1/meters/{serial}/readings"} <= set(paths)
    assert client.get("/docs").status_code == 200
