"""From a received file to the work queue: m2c ingest, m2c vee run/report, m2c vee exceptions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from meter2cash.cli import app

pytestmark = pytest.mark.e2e


@pytest.fixture
def db(one_meter_db):
    return one_meter_db


def test_received_file_to_validated_days_and_exceptions(db, tmp_path):
    start = datetime(2026, 3, 2, tzinfo=UTC)
    lines = ["meter,channel,start,value"]
    for k in range(96 * 3):
        if 100 <= k < 104:  # an hour never received
            continue
        value = 40.0 if k == 200 else 0.2 + 0.05 * np.sin(k / 7)  # and one 160 kW quarter-hour
        ts = (start + timedelta(minutes=15 * k)).isoformat().replace("+00:00", "Z")
        lines.append(f"M1,kwh_import_15m,{ts},{value:.4f}")
    path = tmp_path / "reads.csv"
    path.write_text("\n".join(lines) + "\n")
    rules = tmp_path / "strict.toml"
    rules.write_text(
        'name = "strict"\nversion = "7"\n[rules.interval_spike]\naction = "exception"\npriority = 1\n'
    )

    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(path)]).exit_code == 0
    run = runner.invoke(app, ["vee", "run", "--rules", str(rules)])
    assert run.exit_code == 0, run.output
    assert "(strict v7): 3 channel-days" in run.output and "1 exceptions opened" in run.output
    report = runner.invoke(app, ["vee", "report"])
    assert "vee.missing_interval" in report.output and "vee.interval_spike" in report.output
    listed = runner.invoke(app, ["vee", "exceptions", "list"])
    assert "interval_spike" in listed.output and "M1" in listed.output
    done = runner.invoke(app, ["vee", "exceptions", "resolve", "1", "--action", "estimate"])
    assert done.exit_code == 0 and "resolved (estimate)" in done.output
    shown = runner.invoke(app, ["vee", "exceptions", "show", "1"])
    assert '"resolution": "estimate"' in shown.output
