"""``/api/v1/agreements/{number}/terms`` on SQLite and PostgreSQL: load changes and their errors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import store_example_tariffs
from meter2cash.api import create_app
from meter2cash.events.models import OutboxMessage

with warnings.catch_warnings():  # the test client warns about its httpx transport on import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

BUNDLE = json.loads((Path(__file__).resolve().parents[2] / "examples/masterdata/small.json").read_text())
URL = "/api/v1/agreements/SA-1002/terms"


@pytest.fixture
def client(platform):
    with platform.sessions() as s, s.begin():
        store_example_tariffs(s)
    with TestClient(create_app(platform)) as c:
        assert c.post("/api/v1/masterdata", json=BUNDLE).status_code == 200
        yield c


def test_post_and_get_terms(client, platform):
    before = client.get(URL, params={"on": "2026-10-01"}).json()
    assert before == {
        "agreement": "SA-1002", "sanctioned_load_kw": "25", "contract_demand_kva": "30",
        "payment_mode": "postpaid", "tariff_code": "COM-TOU",
        "in_effect": {"on": "2026-10-01", "sanctioned_load_kw": "25", "contract_demand_kva": "30",
                      "payment_mode": "postpaid", "tariff_code": "COM-TOU"},
        "terms": [],
    }  # fmt: skip
    body = {"effective_from": "2026-10-11", "sanctioned_kw": "40", "reason": "extension", "rebill": True}
    r = client.post(URL, json=body)
    assert r.status_code == 201, r.text  # no bill reaches the date: nothing to rebill
    assert r.json() == {
        "agreement": "SA-1002",
        "term": {"effective_from": "2026-10-11", "sanctioned_kw": "40", "contract_kva": "30",
                 "payment_mode": "postpaid", "tariff_code": "COM-TOU", "reason": "extension",
                 "created_by": "api"},
        "current": True,
        "bills_affected": [],
    }  # fmt: skip
    body = client.get(URL).json()
    assert body["sanctioned_load_kw"] == "40"
    assert [(t["effective_from"], t["sanctioned_kw"]) for t in body["terms"]] == [
        ("2026-01-06", "25"),
        ("2026-10-11", "40"),
    ]
    with platform.sessions() as s:
        topics = s.scalars(select(OutboxMessage.topic)).all()
    assert "agreement.load_changed" in topics
    # a change dated in the future: the columns hold it at once, what is in effect does not
    future = {"effective_from": "2099-01-01", "sanctioned_kw": "60", "reason": "planned"}
    assert client.post(URL, json=future).status_code == 201
    body = client.get(URL).json()
    assert body["sanctioned_load_kw"] == "60" and body["in_effect"]["sanctioned_load_kw"] == "40"
    assert client.get(URL, params={"on": "2026-10-10"}).json()["in_effect"]["sanctioned_load_kw"] == "25"
    assert client.get(URL, params={"on": "2099-01-01"}).json()["in_effect"]["sanctioned_load_kw"] == "60"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"effective_from": "2026-10-11", "sanctioned_kw": "0", "reason": "x"}, 422, "api.invalid_request"),
        (
            {"effective_from": "2026-10-11", "sanctioned_kw": "1e308", "reason": "x"},
            422,
            "api.invalid_request",
        ),
        (
            {"effective_from": "2026-10-11", "sanctioned_kw": "99999999999", "reason": "x"},
            422,
            "api.invalid_request",
        ),
        ({"effective_from": "0001-01-01", "sanctioned_kw": "9", "reason": "x"}, 422, "api.invalid_request"),
        ({"effective_from": "2026-10-11", "sanctioned_kw": 2.5, "reason": "x"}, 422, "api.invalid_request"),
        ({"effective_from": "2025-01-01", "sanctioned_kw": "9", "reason": "x"}, 422, "contract.before_start"),
        ({"effective_from": "2026-10-11", "sanctioned_kw": "9", "reason": ""}, 422, "api.invalid_request"),
    ],
)
def test_bad_load_changes(client, body, status, code):
    r = client.post(URL, json=body)
    assert r.status_code == status and r.json()["error"]["code"] == code


def test_duplicate_date_and_unknown_agreement(client):
    body = {"effective_from": "2026-10-11", "sanctioned_kw": 40, "reason": "extension"}
    assert client.post(URL, json=body).status_code == 201
    r = client.post(URL, json=body)
    assert r.status_code == 409 and r.json()["error"]["code"] == "contract.duplicate_term"
    r = client.get("/api/v1/agreements/SA-0/terms")
    assert r.status_code == 404 and r.json()["error"]["code"] == "service_agreement.not_found"


def test_a_tariff_change_from_a_date(client):
    url = "/api/v1/agreements/SA-1001/tariff"
    r = client.post(
        url, json={"effective_from": "2027-01-01", "tariff_code": "COM-TOU", "reason": "reclassified"}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["term"]["tariff_code"], body["previous_tariff_code"], body["current"]) == (
        "COM-TOU",
        "RES-LT1",
        True,
    )
    terms = client.get("/api/v1/agreements/SA-1001/terms", params={"on": "2026-12-31"}).json()
    assert terms["tariff_code"] == "COM-TOU" and terms["in_effect"]["tariff_code"] == "RES-LT1"
    r = client.post(url, json={"effective_from": "2027-02-01", "tariff_code": "NOPE", "reason": "x"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "contract.unknown_tariff"
    r = client.post(url, json={"effective_from": "2027-02-01", "tariff_code": "COM-TOU", "reason": "x"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "contract.unchanged"


def test_a_payment_mode_change_settles_and_is_refused_in_the_future(client, platform):
    from datetime import timedelta

    from meter2cash.core.timeutil import utcnow

    today = utcnow().astimezone(platform.settings.tz).date()
    pay = {"account": "ACC-1001", "amount": "120.00", "channel": "cash"}
    assert client.post("/api/v1/payments", json=pay).status_code == 201
    url = "/api/v1/agreements/SA-1001/payment-mode"
    later = {"effective_from": (today + timedelta(days=2)).isoformat(), "to": "prepaid", "reason": "asked"}
    r = client.post(url, json=later)
    assert r.status_code == 422 and r.json()["error"]["code"] == "contract.mode_change_in_future"
    r = client.post(url, json={"effective_from": today.isoformat(), "to": "prepaid", "reason": "asked"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["from_mode"], body["to_mode"], body["settled"]) == ("postpaid", "prepaid", "120.00")
    terms = client.get("/api/v1/agreements/SA-1001/terms").json()
    assert terms["payment_mode"] == "prepaid" and terms["in_effect"]["payment_mode"] == "prepaid"
    r = client.post(url, json={"effective_from": today.isoformat(), "to": "prepaid", "reason": "again"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "contract.unchanged"
    r = client.post(url, json={"effective_from": today.isoformat(), "to": "cash", "reason": "x"})
    assert r.status_code == 422
