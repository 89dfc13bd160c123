"""``m2c usage export | show | load`` on SQLite and PostgreSQL: this MDM's determinants given out as
a document, and a document taken in as an external MDM's."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import attach_customer, make_meter
from meter2cash.cli import app
from meter2cash.cli.common import console
from meter2cash.config import get_settings
from meter2cash.mdm.models import Channel
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.usage.format import FORMAT

OCT = ["--from", "2026-10-01", "--to", "2026-10-31"]


@pytest.fixture
def cli_db(platform, session, monkeypatch):
    """The CLI on the test's database, with service point SP-E1 whose meter measured 0.25 kWh
    every 15 minutes of October 2026 (and the days around it)."""
    monkeypatch.setenv("M2C_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("M2C_TIMEZONE", "Asia/Kolkata")
    monkeypatch.setattr(console, "width", 80)
    get_settings.cache_clear()
    ids = make_meter(session, "E1")
    channel = ids["kwh_import_15m"]
    attach_customer(session, session.get(Channel, channel).meter_id, "E1", "residential")
    days = [date(2026, 9, 30) + timedelta(days=d) for d in range(33)]
    MeasurementStore(session).merge(
        {(channel, d): (np.arange(96), np.full(96, 0.25)) for d in days}, {channel: 900}
    )
    session.commit()
    yield platform
    get_settings.cache_clear()


def test_export_show_and_load_back(cli_db, tmp_path):
    runner = CliRunner()
    out = runner.invoke(app, ["usage", "export", *OCT, "SP-E1", "SP-NONE"])
    assert out.exit_code == 1, out.output
    doc = json.loads(out.stdout)
    assert doc["format"] == FORMAT and doc["timezone"] == "Asia/Kolkata"
    (rec,) = doc["determinants"]
    # 31 days × 96 intervals × 0.25 kWh; 0.25 kWh in 15 minutes is 1 kW
    assert (rec["service_point"], rec["kwh_total"], rec["max_demand_kw"]) == ("SP-E1", "744.000", "1.000")
    assert rec["kwh_by_period"] == {"total": "744.000"} and rec["valid_intervals"] == 2976
    assert rec["daily_kwh"]["kwh"] == ["24.000"] * 31
    assert doc["problems"] == [
        {
            "service_point": "SP-NONE",
            "code": "service_point.not_found",
            "message": "no service point 'SP-NONE'",
        }
    ]
    assert "SP-NONE: service_point.not_found" in out.stderr

    shown = runner.invoke(app, ["usage", "show", "SP-E1", *OCT])
    assert shown.exit_code == 0, shown.output
    assert "SP-E1: 2026-10-01 to 2026-10-31, local days in Asia/Kolkata" in shown.output
    assert any(
        ln.strip("│┃ ").split()[:5] == ["total", "│", "744", "│", "1"] for ln in shown.output.splitlines()
    )
    assert "2,976 intervals of 900 s" in shown.output
    as_json = json.loads(runner.invoke(app, ["usage", "show", "SP-E1", *OCT, "--json"]).stdout)
    assert as_json["determinants"] == [rec]
    missing = runner.invoke(app, ["usage", "show", "SP-NONE", *OCT])
    assert missing.exit_code == 2 and "service_point.not_found" in missing.output

    path = tmp_path / "determinants.json"
    path.write_text(json.dumps(doc))
    loaded = runner.invoke(app, ["usage", "load", str(path)])
    assert loaded.exit_code == 0, loaded.output
    assert "1 of 1 records accepted (1 new), 0 refused" in loaded.output
    again = runner.invoke(app, ["usage", "load", str(path), "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["outcomes"] == {"unchanged": 1}

    doc["determinants"].append({**rec, "service_point": "SP-NONE"})
    path.write_text(json.dumps(doc))
    partly = runner.invoke(app, ["usage", "load", str(path)])
    assert partly.exit_code == 1
    assert "determinants[1].service_point: usage.unknown_service_point" in partly.output

    doc["determinants"] = doc["determinants"][1:]
    path.write_text(json.dumps(doc))
    none = runner.invoke(app, ["usage", "load", str(path)])
    assert none.exit_code == 2 and "0 of 1 records accepted" in none.output


def test_bad_input_is_one_line_with_its_code(cli_db, tmp_path):
    runner = CliRunner()
    path = tmp_path / "bad.json"
    path.write_text("{")
    out = runner.invoke(app, ["usage", "load", str(path)])
    assert out.exit_code == 2 and "usage.bad_document" in out.output
    backwards = runner.invoke(app, ["usage", "export", "--from", "2026-10-31", "--to", "2026-10-01"])
    assert backwards.exit_code == 2 and "usage.bad_days" in backwards.output
    bad_day = runner.invoke(app, ["usage", "show", "SP-E1", "--from", "2026-13-01", "--to", "2026-10-01"])
    assert bad_day.exit_code == 2 and "date.invalid" in bad_day.output
