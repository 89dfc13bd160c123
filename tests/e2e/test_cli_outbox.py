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
