"""``m2c audit energy``, ``m2c reads success | gaps`` and ``m2c network show | change`` on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from conftest import attach_customer, make_meter
from meter2cash.audit.models import AuditEntry
from meter2cash.cis.parties.models import ServicePoint
from meter2cash.cli import app
from meter2cash.cli.common import console
from meter2cash.config import get_settings
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.models import DCU, Channel, DistributionTransformer, Feeder, Meter
from meter2cash.mdm.network import assign_boundary_meter
from meter2cash.mdm.store import MeasurementStore


@pytest.fixture
def cli_db(platform, session, monkeypatch):
    """Transformer DT1 on feeder F1 with boundary meter B1 (1 kWh every 15 minutes) and one
    consumer, meter E1 (0.25 kWh, the slots 0..3 of 5 October UTC missing), UTC days."""
    monkeypatch.setenv("M2C_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("M2C_TIMEZONE", "UTC")
    monkeypatch.setattr(console, "width", 100)
    get_settings.cache_clear()
    f1 = Feeder(code="F1")
    session.add(f1)
    session.flush()
    dt1 = DistributionTransformer(code="DT1", feeder_id=f1.id)
    session.add(dt1)
    session.flush()
    session.add_all([DCU(code="DCU1", dt_id=dt1.id), DCU(code="DCU2", dt_id=dt1.id)])
    e1 = make_meter(session, "E1")["kwh_import_15m"]
    b1 = make_meter(session, "B1")["kwh_import_15m"]
    meter_id = session.get(Channel, e1).meter_id
    attach_customer(session, meter_id, "E1", "residential")
    session.query(ServicePoint).filter_by(code="SP-E1").one().dt_id = dt1.id
    session.get(Meter, meter_id).dcu_id = session.query(DCU).filter_by(code="DCU1").one().id
    assign_boundary_meter(session, serial="B1", dt="DT1", at=datetime(2026, 1, 1, tzinfo=UTC))
    day = date(2026, 10, 5)
    MeasurementStore(session).merge(
        {(e1, day): (np.arange(4, 96), np.full(92, 0.25)), (b1, day): (np.arange(96), np.full(96, 1.0))},
        {e1: 900, b1: 900},
    )
    session.commit()
    yield platform
    get_settings.cache_clear()


def test_energy_audit_json_and_table(cli_db):
    runner = CliRunner()
    out = runner.invoke(app, ["audit", "energy", "--from", "2026-10-05", "--to", "2026-10-05", "--json"])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.stdout)["rows"]
    # in 96 kWh; consumer 92 × 0.25 = 23 kWh; loss 73 kWh
    assert (row["node"], row["energy_in"], row["consumers"], row["loss"]) == ("DT1", 96.0, 23.0, 73.0)
    assert row["consumers_completeness"] == pytest.approx(92 / 96)
    out = runner.invoke(
        app, ["audit", "energy", "--from", "2026-10-05", "--to", "2026-10-05", "--level", "feeder"]
    )
    assert out.exit_code == 0, out.output
    # F1 has no boundary meter of its own: its consumers only
    assert "F1" in out.stdout and "23.000" in out.stdout and "73.000" not in out.stdout
    out = runner.invoke(app, ["audit", "energy", "--from", "2026-10-05", "--to", "2026-10-05"])
    assert "DT1" in out.stdout and "73.000" in out.stdout and "76.0 %" in out.stdout
    bad = runner.invoke(
        app, ["audit", "energy", "--from", "2026-10-05", "--to", "2026-10-05", "--by", "week"]
    )
    assert bad.exit_code == 2 and "audit.unknown_by" in bad.output


def test_read_success_and_gaps_requested_once(cli_db):
    runner = CliRunner()
    out = runner.invoke(app, ["reads", "success", "--day", "2026-10-05", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    # E1 misses four intervals; B1 is complete; B1 hangs below no DCU
    assert [(r["node"], r["expected"], r["complete"]) for r in report["dcus"]] == [
        ("(none)", 1, 1),
        ("DCU1", 1, 0),
    ]
    assert (report["total"]["share"], report["total"]["meets_target"], report["target"]) == (
        50.0,
        False,
        98.5,
    )
    table = runner.invoke(app, ["reads", "success", "--day", "2026-10-05"])
    assert "missed" in table.stdout and "DCU1" in table.stdout
    args = ["reads", "gaps", "--from", "2026-10-05", "--to", "2026-10-05", "--json"]
    listed = json.loads(runner.invoke(app, args).stdout)
    assert listed["gaps"] == [
        {
            "meter": "E1",
            "channel": "kwh_import_15m",
            "from": "2026-10-05T00:00:00Z",
            "to": "2026-10-05T01:00:00Z",
            "intervals": 4,
        }
    ]
    for _ in range(2):
        out = runner.invoke(app, [*args, "--request"])
        assert out.exit_code == 0, out.output
    with cli_db.sessions() as s:
        (cmd,) = s.scalars(select(MeterCommand)).all()
        assert (cmd.kind, cmd.params["from"], cmd.requested_by) == (
            "reacquire",
            "2026-10-05T00:00:00Z",
            "cli",
        )


def test_network_change_is_audited_and_shown(cli_db):
    runner = CliRunner()
    args = ["network", "change", "--link", "meter_dcu", "--child", "E1", "--parent", "DCU2",
            "--at", "2026-10-10T06:00:00+05:30", "--by", "ops"]  # fmt: skip
    out = runner.invoke(app, args)
    assert out.exit_code == 0 and "recorded" in out.stdout, out.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "already known" in again.stdout
    shown = json.loads(runner.invoke(app, ["network", "show", "E1", "--json"]).stdout)
    assert shown["parent"] == {"kind": "dcu", "code": "DCU2"}
    assert [(h["parent"], h["to"]) for h in shown["history"]] == [
        ("DCU1", "2026-10-10T00:30:00+00:00"),
        ("DCU2", None),
    ]
    text = runner.invoke(app, ["network", "show", "DT1"])
    assert "boundary meter B1" in text.stdout and "SP-E1" in text.stdout
    with cli_db.sessions() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "network.change")
            )
            == 1
        )
    unknown = runner.invoke(
        app,
        [
            "network",
            "change",
            "--link",
            "meter_dcu",
            "--child",
            "NOPE",
            "--parent",
            "DCU2",
            "--at",
            "2026-10-10",
        ],
    )
    assert unknown.exit_code == 2 and "network.unknown_child" in unknown.output
    assert runner.invoke(app, ["network", "show", "NOPE"]).exit_code == 2
