"""Re-read requests: an exception resolved with ``reread`` is sent to the head-end, the simulated
head-end answers with a reading file, ingestion and VEE take it, the request completes and the
exception is resolved; without an answer the request fails."""

from __future__ import annotations

import warnings
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from integration.test_vee_exceptions import DAY, START, _customer
from meter2cash.api.app import create_app
from meter2cash.audit.models import AuditEntry
from meter2cash.cis.parties.customer_classes import service_point_classes
from meter2cash.cli import app
from meter2cash.config import get_settings
from meter2cash.core.quality import Quality
from meter2cash.events.models import OutboxMessage
from meter2cash.hes.reread_answers import SimulatedHes, answer_round
from meter2cash.mdm.ingest import ingest_paths
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.vee import work_queue as queue
from meter2cash.mdm.vee.models import VeeException, VeeRereadRequest
from meter2cash.mdm.vee.rereads import complete_rereads, send_rereads, sent_commands
from meter2cash.mdm.vee.service import run_vee

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CLEAN = np.round(0.3 + 0.05 * np.sin(np.arange(96) / 5), 3)  # the spiky day without its spike


def _reread_requested(platform) -> tuple[int, int]:
    """A commercial meter's spike opens an exception, which a person resolves with ``reread``."""
    with platform.sessions() as s:
        cid = _customer(s, "C-9", "commercial")
        spiky = CLEAN.copy()
        spiky[50] = 40.0  # 160 kW for a quarter-hour
        MeasurementStore(s).merge({(cid, DAY): (np.arange(96), spiky)}, {cid: 900})
        s.commit()
        run_vee(s, start=START, end=START + timedelta(days=1), customer_classes=service_point_classes)
        s.commit()
        xid = s.scalars(select(VeeException.id)).one()
        queue.resolve(s, xid, "reread", actor="ops", reason="spike: read the meter again")
        s.commit()
    return cid, xid


def _hes() -> SimulatedHes:
    return SimulatedHes(["C-9"], CLEAN[None, :], START)


def test_reread_sent_answered_ingested_validated_completed(platform, tmp_path):
    cid, xid = _reread_requested(platform)
    out = answer_round(platform.sessions, hes=_hes(), out_dir=tmp_path)
    assert out == {"sent": 1, "answered": 1, "files": 1, "completed": 1, "failed": 0}
    with platform.sessions() as s:
        cmd = s.scalars(select(OutboxMessage).where(OutboxMessage.topic == "hes.reread_requested")).one()
        assert cmd.payload["meter"] == "C-9" and cmd.payload["channel"] == "kwh_import_15m"
        assert cmd.payload["window_start"] == START.isoformat()
        assert cmd.payload["window_end"] == (START + timedelta(days=1)).isoformat()
        req = s.scalars(select(VeeRereadRequest)).one()
        assert req.status == "completed" and req.outcome == "96 intervals re-read"
        assert req.sent_at is not None and req.completed_at is not None and req.sent_at <= req.completed_at
        e = s.get(VeeException, xid)
        assert e.status == "resolved" and e.resolution == "reread" and e.resolved_by == "hes"
        audit = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "vee.exception_reread_completed")
        ).one()
        assert audit.entity_id == str(xid) and audit.before["status"] == "reread_requested"
        assert audit.after["outcome"] == "96 intervals re-read"
        # the re-read day is validated from the head-end's values: no spike, no new exception
        res = run_vee(s, start=START, end=START + timedelta(days=1), customer_classes=service_point_classes)
        s.commit()
        assert res.channel_days == 1 and "vee.interval_spike" not in res.findings_by_rule
        day = MeasurementStore(s).load_days([(cid, DAY)])[(cid, DAY)]
        np.testing.assert_allclose(day.values, CLEAN)
        # the other intervals came again unchanged; the re-read one differs from its first receipt
        assert day.flags[50] == Quality.SUSPECT | Quality.DUPLICATE and not np.delete(day.flags, 50).any()
        assert queue.list_exceptions(s, open_only=True)[1] == 0
        shown = queue.get_exception(s, xid)
        assert shown["rereads"][0]["status"] == "completed" and shown["rereads"][0]["outcome"]


def test_the_vee_run_after_ingestion_completes_the_request(platform, tmp_path):
    _, xid = _reread_requested(platform)
    with platform.sessions() as s:
        assert send_rereads(s) == 1
        s.commit()
        assert send_rereads(s) == 0  # sent once
        commands = sent_commands(s)
    files = _hes().answer(commands, tmp_path)
    assert [r.error for r in ingest_paths(platform.sessions, files, source="hes-reread")] == [None]
    with platform.sessions() as s:
        res = run_vee(s, start=START, end=START + timedelta(days=1), customer_classes=service_point_classes)
        s.commit()
        assert res.rereads == {"completed": 1, "failed": 0}
        assert res.to_dict()["rereads"] == {"completed": 1, "failed": 0}
        assert s.get(VeeException, xid).status == "resolved"


def test_a_request_without_an_answer_fails_and_the_exception_opens_again(platform, tmp_path):
    _, xid = _reread_requested(platform)
    nobody = SimulatedHes(["OTHER"], CLEAN[None, :], START)
    out = answer_round(platform.sessions, hes=nobody, out_dir=tmp_path)
    assert out == {"sent": 1, "answered": 0, "files": 0, "completed": 0, "failed": 0}
    with platform.sessions() as s:
        req = s.scalars(select(VeeRereadRequest)).one()
        assert req.status == "sent"
        assert complete_rereads(s, now=req.sent_at + timedelta(hours=23)) == {"completed": 0, "failed": 0}
        assert complete_rereads(s, now=req.sent_at + timedelta(hours=25)) == {"completed": 0, "failed": 1}
        s.commit()
        req = s.scalars(select(VeeRereadRequest)).one()
        assert req.status == "failed" and "no data" in req.outcome
        e = s.get(VeeException, xid)
        assert e.status == "open" and e.resolved_at is None
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "vee.exception_reread_failed")).one()


def test_rereads_listed_by_the_api_and_the_command_line(platform, db_url, monkeypatch, tmp_path):
    _reread_requested(platform)
    with TestClient(create_app(platform)) as client:
        page = client.get("/api/v1/vee/rereads", params={"status": "requested"}).json()
        assert page["total"] == 1 and page["items"][0]["meter"] == "C-9"
        assert page["items"][0]["status"] == "requested" and page["items"][0]["sent_at"] is None
        assert client.get("/api/v1/vee/rereads", params={"status": "sent"}).json()["total"] == 0
    monkeypatch.setenv("M2C_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        sent = runner.invoke(app, ["hes", "send-rereads"])
        assert sent.exit_code == 0 and "1 re-read request(s) sent" in sent.output
        listed = runner.invoke(app, ["hes", "rereads"])
        assert listed.exit_code == 0 and "C-9" in listed.output and "sent" in listed.output
        missing = runner.invoke(app, ["hes", "answer-rereads", "--state", str(tmp_path / "none.json")])
        assert missing.exit_code == 2 and "hes.simulator_state_missing" in missing.output
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("meters", [3])
def test_simulator_state_rebuilds_the_clean_load(tmp_path, meters):
    from datetime import UTC, datetime

    from meter2cash.hes.reread_answers import save_state
    from meter2cash.hes.simulator import FleetConfig, build_fleet, simulate_load

    start = datetime(2026, 9, 1, tzinfo=UTC)
    fleet = build_fleet(FleetConfig(meters=meters, seed=5), start.date(), "Asia/Kolkata")
    clean = simulate_load(fleet, start, 96 * 3, "Asia/Kolkata", seed=6)
    path = tmp_path / "simulator.json"
    save_state(
        path, meters=meters, fleet_seed=5, load_seed=6, start_utc=start, n_intervals=96 * 3, tz="Asia/Kolkata"
    )
    hes = SimulatedHes.from_state(path)
    got = hes.window(fleet.serials[1], start + timedelta(days=1), start + timedelta(days=2))
    assert got is not None and np.array_equal(got[1], clean[1, 96:192])
    assert hes.window("SM-UNKNOWN", start, start + timedelta(days=1)) is None


def test_an_answer_that_changes_nothing_still_completes_the_request(platform, tmp_path):
    _, xid = _reread_requested(platform)
    same = CLEAN.copy()
    same[50] = 40.0  # the head-end reads the same values again: the spike is real
    out = answer_round(platform.sessions, hes=SimulatedHes(["C-9"], same[None, :], START), out_dir=tmp_path)
    assert out["completed"] == 1
    with platform.sessions() as s:
        req = s.scalars(select(VeeRereadRequest)).one()
        assert req.status == "completed" and req.outcome == "96 intervals re-read, unchanged"
        assert s.get(VeeException, xid).status == "resolved"
