"""``m2c commands`` and ``/api/v1/commands`` on SQLite and PostgreSQL: issue to one meter and to a
group, the same checks and codes on both edges, the audit trail, cancel before sending, a report
with the relay read back, and an audit entry for every staff action."""

from __future__ import annotations

import json
import warnings

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from conftest import make_meter
from meter2cash.api.app import create_app
from meter2cash.audit.models import AuditEntry
from meter2cash.cli import app
from meter2cash.cli.common import console
from meter2cash.config import get_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def cli_db(platform, monkeypatch):
    monkeypatch.setenv("M2C_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setattr(console, "width", 120)
    get_settings.cache_clear()
    yield platform
    get_settings.cache_clear()


@pytest.fixture
def client(platform):
    with TestClient(create_app(platform)) as c:
        yield c


def _m2c(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_issue_follow_and_cancel_from_the_cli(cli_db, session):
    for serial in ("CM1", "CM2", "CM3"):
        make_meter(session, serial)
    session.commit()
    code, out = _m2c("commands", "issue", "configure", "CM1", "--param", "load_limit_kw=6.5",
                     "--reason", "sanctioned load", "--actor", "asha", "--json")  # fmt: skip
    assert code == 0, out
    one = json.loads(out)
    assert (one["kind"], one["meter"], one["status"], one["params"]) == (
        "configure", "CM1", "requested", {"load_limit_kw": "6.5"}
    )  # fmt: skip
    code, out = _m2c("commands", "issue", "time_sync", "CM1", "CM2", "CM3", "--json")
    group = json.loads(out)
    assert (group["group"], group["status"], group["progress"]["children"]) == (True, "pending", 3)
    code, out = _m2c("commands", "list", "--group", str(group["id"]), "--json")
    assert sorted(r["meter"] for r in json.loads(out)) == ["CM1", "CM2", "CM3"]

    code, out = _m2c("commands", "cancel", str(one["id"]), "--reason", "wrong limit", "--actor", "asha")
    assert code == 0 and "cancelled" in out
    code, out = _m2c("commands", "show", str(one["id"]))
    assert code == 0 and "Audit trail" in out and "wrong limit" in out
    # refusals name the code
    code, out = _m2c("commands", "issue", "configure", "CM1", "--param", "load_limit_kw=-1")
    assert code == 2 and "command.bad_params" in out
    code, out = _m2c("commands", "issue", "read", "NOPE", "--param", "profile=relay")
    assert code == 2 and "command.unknown_meter" in out
    code, out = _m2c("commands", "list", "--group", str(group["id"]), "--meter", "CM2", "--json")
    child = json.loads(out)[0]["id"]
    assert _m2c("commands", "report", str(child), "sent")[0] == 0
    code, out = _m2c("commands", "cancel", str(child), "--reason", "too late")
    assert code == 2 and "command.bad_transition" in out
    actions = session.scalars(select(AuditEntry.action).where(AuditEntry.entity == "meter_command")).all()
    assert sorted(actions) == ["command.cancelled", "command.issued", "command.issued"]


def test_the_api_issues_reports_and_refuses_alike(client, session):
    make_meter(session, "AP1")
    session.commit()
    body = {"kind": "disconnect", "meters": ["AP1"], "idempotency_key": "coll-77", "actor": "collections"}
    first = client.post("/api/v1/commands", json=body)
    assert first.status_code == 201, first.text
    again = client.post("/api/v1/commands", json=body)
    assert again.json()["id"] == first.json()["id"]
    cid = first.json()["id"]
    assert client.post(f"/api/v1/commands/{cid}/reports", json={"status": "sent"}).status_code == 200
    done = client.post(
        f"/api/v1/commands/{cid}/reports", json={"status": "executed", "relay": "disconnected"}
    )
    assert (done.json()["status"], done.json()["relay_state"]) == ("executed", "disconnected")
    assert [s["to"] for s in done.json()["steps"]] == ["requested", "sent", "executed"]
    late = client.post(f"/api/v1/commands/{cid}/cancel", json={"reason": "too late"})
    assert (late.status_code, late.json()["error"]["code"]) == (409, "command.bad_transition")
    bad = client.post(
        "/api/v1/commands", json={"kind": "read", "meters": ["AP1"], "params": {"profile": "x"}}
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "command.bad_params")
    missing = client.get("/api/v1/commands/999999")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "command.not_found")
    listed = client.get("/api/v1/commands", params={"meter": "AP1", "kind": "disconnect"})
    assert [c["id"] for c in listed.json()] == [cid]


def test_a_firmware_rollout_through_the_api(client, session):
    for serial in ("FWA", "FWB"):
        make_meter(session, serial)
    session.commit()
    body = {
        "image": "fw.bin",
        "version": "3.0",
        "sha256": "ab" * 32,
        "meters": ["FWB", "FWA"],
        "stages": [0.5, 1],
    }
    r = client.post("/api/v1/commands/firmware-rollouts", json=body)
    assert r.status_code == 201, r.text
    plan = r.json()["result"]["rollout"]
    assert (plan["sizes"], plan["stage"], r.json()["status"]) == ([1, 1], 1, "pending")
    (pilot,) = client.get("/api/v1/commands", params={"group": r.json()["id"]}).json()
    assert pilot["meter"] == "FWB"  # the order given
    bad = client.post("/api/v1/commands/firmware-rollouts", json={**body, "stages": [0.5, 0.2]})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "command.bad_rollout")
    other = client.post(f"/api/v1/commands/{pilot['id']}/advance", json={})
    assert (other.status_code, other.json()["error"]["code"]) == (404, "command.not_found")
