"""``m2c ingest`` through the Typer runner on a migrated SQLite file."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from meter2cash.cli import app
from meter2cash.config import get_settings

pytestmark = pytest.mark.e2e
HEADER = "meter,channel,start,value\n"


@pytest.fixture
def db(one_meter_db):
    return one_meter_db


def test_ingest_reports_rows_problems_and_exit_codes(db, tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(
        HEADER + "M1,kwh_import_15m,2026-10-01T00:00:00Z,1\nM1,kwh_import_15m,2026-10-01T00:15:00Z,2\n"
    )
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(
        HEADER + "M1,kwh_import_15m,2026-10-01T00:30:00Z,3\nM7,kwh_import_15m,2026-10-01T00:30:00Z,3\n"
    )
    runner = CliRunner()

    first = runner.invoke(app, ["ingest", str(good), "--source", "hes"])
    assert first.exit_code == 0, first.output
    assert "good.csv" in first.output and "total" in first.output

    second = runner.invoke(app, ["ingest", str(good), str(mixed)])
    assert second.exit_code == 1, second.output
    assert "already ingested" in second.output
    assert "mixed.csv:3" in second.output and "ingest.unknown_meter" in second.output
    total = next(line for line in second.output.splitlines() if "total" in line)
    assert [c.strip() for c in total.split("│")[2:8]] == ["4", "1", "1", "0", "0", "1"]

    as_json = runner.invoke(app, ["ingest", str(mixed), "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)[0]["duplicate_file"] is True


def test_bad_file_exits_2_and_unmigrated_database_exits_2(db, tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    result = CliRunner().invoke(app, ["ingest", str(bad)])
    assert result.exit_code == 2
    assert "ingest.bad_file" in result.output and "not valid JSON" in result.output

    monkeypatch.setenv("M2C_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["ingest", str(bad)])
    assert result.exit_code == 2
