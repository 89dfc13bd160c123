"""m2c outbox status / dispatch / relay through the CLI."""

from __future__ import annotations

from typer.testing import CliRunner

from meter2cash.bootstrap import bootstrap
from meter2cash.cli import app
from meter2cash.config import Settings
from meter2cash.events.outbox import emit


def test_status_and_dispatch(one_meter_db):
    p = bootstrap(Settings(database_url=one_meter_db))
    with p.sessions() as s, s.begin():
        emit(s, "readings.received", {"batch": 1})
        emit(s, "bill.issued", {"bill": 1})
    p.dispose()
    runner = CliRunner()
    status = runner.invoke(app, ["outbox", "status"])
    assert status.exit_code == 0 and "readings.received" in status.output and "bill.issued" in status.output
    first = runner.invoke(app, ["outbox", "dispatch"])
    assert first.exit_code == 0 and "dispatched 2 events" in first.output
    again = runner.invoke(app, ["outbox", "dispatch"])
    assert "nothing waiting" in again.output


def test_relay_needs_a_server(one_meter_db, monkeypatch):
    monkeypatch.delenv("M2C_NATS_URL", raising=False)
    result = CliRunner().invoke(app, ["outbox", "relay"])
    assert result.exit_code == 2 and "bus.not_configured" in result.output


def test_notify_send_uses_the_platform_s_sms_adapter(one_meter_db, monkeypatch, tmp_path):
    import json

    from meter2cash.notify.models import Notification

    sms_file = tmp_path / "sms.jsonl"
    monkeypatch.setenv("M2C_NOTIFY_SMS_FILE", str(sms_file))
    monkeypatch.delenv("M2C_NOTIFY_SMS_URL", raising=False)
    p = bootstrap(Settings(database_url=one_meter_db))
    with p.sessions() as s, s.begin():
        context = {"balance": "12.50", "threshold": "50.00"}
        s.add(Notification(channel="sms", recipient="+919800000001", template="low_balance", context=context))
    p.dispose()
    result = CliRunner().invoke(app, ["notify", "send", "--json"])
    assert result.exit_code == 0, result.output
    (line,) = sms_file.read_text().splitlines()
    sent = json.loads(line)
    assert sent["to"] == "+919800000001" and "balance is 12.50" in sent["text"]
