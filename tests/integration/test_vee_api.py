"""The VEE API: runs, rule sets, the exceptions work queue."""

from __future__ import annotations

import warnings
from datetime import date

import numpy as np
import pytest

from integration.test_vee_exceptions import _customer, _spiky_day
from meter2cash.api.app import create_app
from meter2cash.core.quality import Quality
from meter2cash.mdm.store import MeasurementStore

with warnings.catch_warnings():  # the test client warns about its httpx transport on import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

DAY = date(2026, 3, 10)


@pytest.fixture
def client(platform):
    with TestClient(create_app(platform)) as c:
        yield c


def test_run_queue_and_resolve_through_the_api(client, platform):
    with platform.sessions() as session:
        cid = _customer(session, "C-7", "commercial")
        _spiky_day(session, cid)
        session.commit()
    r = client.post("/api/v1/vee/runs", json={"from": "2026-03-10", "to": "2026-03-10", "meters": ["C-7"]})
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["channel_days"] == 1 and run["exceptions"] == 1 and run["rule_set"] == "commercial"
    assert client.get(f"/api/v1/vee/runs/{run['run_id']}").json()["findings_by_rule"]["vee.interval_spike"]

    page = client.get("/api/v1/vee/exceptions", params={"open_only": True, "meter": "C-7"}).json()
    assert page["total"] == 1
    xid = page["items"][0]["id"]
    assert (
        client.post(f"/api/v1/vee/exceptions/{xid}/assign", json={"assignee": "ravi"}).json()["status"]
        == "assigned"
    )
    shown = client.post(f"/api/v1/vee/exceptions/{xid}/comments", json={"text": "checking", "author": "ravi"})
    assert shown.status_code == 201 and shown.json()["comments"][0]["text"] == "checking"
    bad = client.post(f"/api/v1/vee/exceptions/{xid}/resolve", json={"action": "edit", "values": {"50": 1.0}})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "vee.edit_reason_missing"
    ok = client.post(
        f"/api/v1/vee/exceptions/{xid}/resolve",
        json={"action": "edit", "values": {"50": 1.0}, "reason": "site visit", "actor": "ravi"},
    )
    assert ok.status_code == 200 and ok.json()["status"] == "resolved"
    with platform.sessions() as session:
        day = MeasurementStore(session).load_days([(cid, DAY)])[(cid, DAY)]
        assert day.values[50] == 1.0 and day.flags[50] == Quality.EDITED
    again = client.post(f"/api/v1/vee/exceptions/{xid}/resolve", json={"action": "accept"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "vee.exception_resolved"
    assert client.get("/api/v1/vee/exceptions/999999").json()["error"]["code"] == "vee.exception_not_found"
    assert np.isfinite(day.values).all()


def test_rule_sets_get_and_put(client):
    names = [r["name"] for r in client.get("/api/v1/vee/rule-sets").json()]
    assert {"default", "residential", "commercial"} <= set(names)
    body = client.get("/api/v1/vee/rule-sets/commercial").json()
    assert body["version"] == "1" and body["versions"][0]["source"] == "package"
    del body["versions"]
    body["version"] = "2"
    body["rules"]["sum_check"]["tolerance_rel"] = 0.005
    r = client.put("/api/v1/vee/rule-sets/commercial", json=body)
    assert r.status_code == 200 and r.json()["version"] == "2"
    now = client.get("/api/v1/vee/rule-sets/commercial").json()
    assert now["rules"]["sum_check"]["tolerance_rel"] == 0.005 and [
        v["version"] for v in now["versions"]
    ] == ["1", "2"]
    reused = client.put("/api/v1/vee/rule-sets/commercial", json={**body, "description": "x"})
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "vee.rule_set_version_exists"
    invalid = client.put(
        "/api/v1/vee/rule-sets/commercial", json={**body, "version": "3", "rules": {"nope": {}}}
    )
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "vee.rule_set_invalid"
    assert client.get("/api/v1/vee/rule-sets/none").json()["error"]["code"] == "vee.rule_set_not_found"
    bad_run = client.post("/api/v1/vee/runs", json={"from": "2026-03-10", "to": "2026-03-01"})
    assert bad_run.json()["error"]["code"] == "vee.window_invalid"
