"""Payment and wallet endpoints through TestClient on SQLite and PostgreSQL."""

from __future__ import annotations

import warnings
from datetime import date

import pytest
from test_payments import debit, make_account
from test_prepaid import build_prepaid

from meter2cash.api.app import create_app

with warnings.catch_warnings():  # the test client warns about its httpx transport on import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def client(platform):
    with TestClient(create_app(platform)) as c:
        yield c


def test_office_payment_allocates_and_lists(client, session):
    a = make_account(session, "A-1")
    debit(session, a, "300.00", date(2026, 9, 30))
    session.commit()
    r = client.post(
        "/api/v1/payments",
        json={"account": "A-1", "amount": "120.50", "channel": "cheque", "reference": "CHQ 7"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (
        body["receipt_number"].startswith("R-") and body["amount"] == "120.50" and body["channel"] == "cheque"
    )
    listed = client.get("/api/v1/payments", params={"account": "A-1"}).json()
    assert listed["total"] == 1 and listed["items"][0]["receipt_number"] == body["receipt_number"]


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"account": "NOPE", "amount": "1.00"}, 404, "account.not_found"),
        ({"account": "A-1", "amount": "1.001"}, 422, "api.invalid_request"),
        ({"account": "A-1", "amount": "-1"}, 422, "api.invalid_request"),
        ({"account": "A-1", "amount": "1.00", "channel": "barter"}, 422, "api.invalid_request"),
    ],
)
def test_refusals_have_codes(client, session, payload, status, code):
    make_account(session, "A-1")
    session.commit()
    r = client.post("/api/v1/payments", json=payload)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)


def test_wallet_recharge_charges_and_emergency_credit(client, session):
    build_prepaid(session, n=1)
    r = client.post("/api/v1/wallets/A-0/recharge", json={"amount": "250.00"})
    assert r.status_code == 201 and r.json()["wallet"]["balance"] == "250.00"  # INR minor units
    wallet = client.get("/api/v1/wallets/A-0").json()
    assert wallet["supply"] == "connected" and wallet["last_recharge"] == "250.00"
    assert client.get("/api/v1/wallets/A-0/charges").json() == []
    assert client.post("/api/v1/wallets/A-0/emergency-credit").json()["emergency_credit"] == "50.00"
    again = client.post("/api/v1/wallets/A-0/emergency-credit")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "wallet.emergency_in_use")
    assert client.get("/api/v1/wallets/NOPE").json()["error"]["code"] == "account.not_found"


def test_webhook_without_signature_is_refused(client):
    r = client.post("/api/v1/payments/webhook", content=b'{"id":"evt"}')
    assert (r.status_code, r.json()["error"]["code"]) == (400, "gateway.no_signature")


# Amounts a client might send, and why each is refused at the edge (422, never a 500).
BAD_AMOUNTS = [
    (120.5, "not a JSON number"),
    (120, "not a JSON number"),
    ("1e999", "no exponent"),
    ("1.34e308", "no exponent"),
    ("1" * 28, "28 digits"),
    ("Infinity", "not a number"),
    ("NaN", "not a number"),
    ("0.00", "zero"),
    ("1.001", "more decimals than INR has"),
    (" 12.50", "spaces"),
]


@pytest.mark.parametrize(("amount", "why"), BAD_AMOUNTS, ids=[w for _, w in BAD_AMOUNTS])
@pytest.mark.parametrize(
    "route", ["/api/v1/payments", "/api/v1/payments/orders", "/api/v1/wallets/A-1/recharge"]
)
def test_money_is_a_bounded_decimal_string(client, session, route, amount, why):
    make_account(session, "A-1")
    session.commit()
    r = client.post(route, json={"account": "A-1", "amount": amount})
    error = r.json()["error"]
    assert (r.status_code, error["code"]) == (422, "api.invalid_request"), r.text
    assert error["data"]["errors"][0]["loc"] == ["body", "amount"]


def test_a_json_number_overflowing_to_infinity_is_refused(client, session):
    make_account(session, "A-1")
    session.commit()
    for raw in (b"1e999", b"1.34e308", b"1234567890123456789012345678"):
        r = client.post(
            "/api/v1/payments",
            content=b'{"account": "A-1", "amount": ' + raw + b"}",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422, r.text
        assert "decimal string" in r.json()["error"]["data"]["errors"][0]["message"]


def test_dates_outside_the_window_are_refused(client, session):
    make_account(session, "A-1")
    session.commit()
    r = client.post(
        "/api/v1/payments", json={"account": "A-1", "amount": "1.00", "received_on": "0001-01-01"}
    )
    assert (r.status_code, r.json()["error"]["data"]["errors"][0]["type"]) == (422, "date_out_of_range")


def test_long_reference_and_huge_offset_are_refused_not_sent_to_sql(client, session):
    make_account(session, "A-1")
    session.commit()
    r = client.post("/api/v1/payments", json={"account": "A-1", "amount": "1.00", "reference": "x" * 5000})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "api.invalid_request")
    r = client.get("/api/v1/payments", params={"offset": 10**19})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "api.invalid_request")
    assert client.get("/api/v1/payments", params={"offset": 10**9}).json()["items"] == []
