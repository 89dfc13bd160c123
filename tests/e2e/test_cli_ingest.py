"""``m2c ingest`` through the Typer runner on a migrated SQLite file."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from meter2cash.bootstrap import bootstrap
from meter2cash.cli import app
from meter2cash.config import Settings, get_settings
from meter2cash.mdm.models import Channel, Meter, ReadingType

pytestmark = pytest.mark.e2e
HEADER = "meter,channel,start,value\n"


@pytest.fixture
def db(one_meter_db):
    return one_meter_db


def _cells(output: str, first: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.strip().startswith(first))
    return line.split()


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
    # accepted, rejected, new, dup, changed
    assert _cells(second.output, "good.csv")[1:6] == ["2", "0", "0", "2", "0"]
    assert _cells(second.output, "total")[1:6] == ["3", "1", "1", "2", "0"]

    # M7 is still unknown: the same bytes are refused the same way, not "already ingested"
    as_json = runner.invoke(app, ["ingest", str(mixed), "--json"])
    assert as_json.exit_code == 1, as_json.output
    out = json.loads(as_json.output)[0]
    assert (out["duplicate_file"], out["resent"], out["rows_rejected"]) == (False, True, 1)
    assert [p["code"] for p in out["problems"]] == ["ingest.unknown_meter"]


def test_rows_of_an_unknown_meter_are_stored_when_the_same_file_comes_after_the_meter(db, tmp_path):
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(
        HEADER + "M1,kwh_import_15m,2026-10-01T00:30:00Z,3\nM7,kwh_import_15m,2026-10-01T00:30:00Z,4\n"
    )
    runner = CliRunner()
    refused = runner.invoke(app, ["ingest", str(mixed)])
    assert refused.exit_code == 1 and "ingest.unknown_meter" in refused.output

    p = bootstrap(Settings(database_url=db))
    with p.sessions() as s:  # the meter is loaded
        meter = Meter(serial="M7", status="installed")
        s.add(meter)
        s.flush()
        rt = s.scalar(select(ReadingType.id).where(ReadingType.code == "kwh_import_15m"))
        s.add(Channel(meter_id=meter.id, reading_type_id=rt, multiplier=Decimal(1)))
        s.commit()
    p.dispose()

    stored = runner.invoke(app, ["ingest", str(mixed)])
    assert stored.exit_code == 0, stored.output
    assert "ingest.unknown_meter" not in stored.output
    assert _cells(stored.output, "mixed.csv")[1:6] == ["2", "0", "1", "1", "0"]
    again = runner.invoke(app, ["ingest", str(mixed)])
    assert again.exit_code == 0 and "already ingested" in again.output


def test_the_table_fits_80_columns_without_cutting_numbers(db, tmp_path, monkeypatch):
    from meter2cash.cli.common import console

    monkeypatch.setattr(console, "width", 80)
    rows = "".join(
        f"M1,kwh_import_15m,2026-10-{1 + k // 96:02d}T{k % 96 // 4:02d}:{k % 4 * 15:02d}:00Z,1\n"
        for k in range(96 * 12)
    )
    big = tmp_path / "a-rather-long-file-name-from-the-head-end-system-2026-10.csv"
    big.write_text(HEADER + rows + "M7,kwh_import_15m,2026-10-01T00:00:00Z,1\n")
    out = CliRunner().invoke(app, ["ingest", str(big)])
    assert out.exit_code == 1, out.output
    assert max(len(line) for line in out.output.splitlines()) <= 80
    assert "1,152" in out.output and "…" not in out.output


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
