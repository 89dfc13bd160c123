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
        ({"account": "A-1", "amount": "1.001"}, 422, "payment.bad_amount"),
        ({"account": "A-1", "amount": "-1"}, 422, "api.invalid_request"),
        ({"account": "A-1", "amount": "1.00", "channel": "barter"}, 422, "payment.bad_channel"),
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
    assert r.status_code == 201 and r.json()["wallet"]["balance"] == "250.0000"
    wallet = client.get("/api/v1/wallets/A-0").json()
    assert wallet["supply"] == "connected" and wallet["last_recharge"] == "250.0000"
    assert client.get("/api/v1/wallets/A-0/charges").json() == []
    assert client.post("/api/v1/wallets/A-0/emergency-credit").json()["emergency_credit"] == "50.0000"
    again = client.post("/api/v1/wallets/A-0/emergency-credit")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "wallet.emergency_in_use")
    assert client.get("/api/v1/wallets/NOPE").json()["error"]["code"] == "account.not_found"


def test_webhook_without_signature_is_refused(client):
    r = client.post("/api/v1/payments/webhook", content=b'{"id":"evt"}')
    assert (r.status_code, r.json()["error"]["code"]) == (400, "gateway.no_signature")
