"""The main job end to end through the CLI: a small demo utility, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _run_demo(url: str, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    report = tmp_path / "report.json"
    env = {**os.environ, "M2C_DATABASE_URL": url, "M2C_VAR_DIR": str(tmp_path / "var"), "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "meter2cash.cli", "demo", "--reset", "--json-out", str(report), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(report.read_text())


def _check_totals(report: dict, meters: int) -> None:
    ing = report["ingest"]["on_time"]
    assert ing["rows_rejected"] == report["faults"]["malformed_lines"] == 4
    assert ing["duplicate_files"] == 1
    assert ing["intervals_duplicate"] > 0
    assert report["ingest"]["late"]["intervals_new"] == report["faults"]["late_intervals"]
    # Energy in = energy billed, and the books balance.
    assert Decimal(report["energy"]["difference_kwh"]) == 0
    assert Decimal(report["energy"]["billed_kwh"]) > 0
    assert Decimal(str(report["ledger"]["total"])) == 0
    bills = sum(run["bills"] for run in report["billing"]["runs"])
    assert bills == meters
    rules = report["vee"]["first_pass"]["findings_by_rule"]
    assert rules["vee.missing_interval"]["findings"] >= report["faults"]["gaps"]
    assert "vee.interval_spike" in rules and "vee.negative_consumption" in rules
    est = report["estimation"]
    assert est["still_missing"] == 0
    assert 0 < est["estimated_share"] < 0.05
    assert report["bill_files"] and all(Path(p).exists() for p in report["bill_files"])
    # Prepaid: charged daily through the tariff, equal to the monthly statements to the paisa.
    pp = report["prepaid"]
    statements = sum(
        Decimal(t["amount"])
        for run in report["billing"]["runs"]
        for t in run["totals"]
        if t["kind"] == "prepaid"
    )
    assert Decimal(pp["charged"]) == statements > 0
    assert pp["days"] == 30 and pp["recharges"] >= pp["wallets"]
    # Postpaid: payments through several channels reduce receivables; the rest ages.
    pay = report["payments"]
    assert pay["paid_in_full"] + pay["paid_in_part"] + pay["unpaid"] == pay["bills"]
    assert {c["channel"] for c in pay["by_channel"]} <= {"cash", "cheque", "agent", "online"}
    assert report["problems"] == []


def test_demo_on_sqlite(tmp_path):
    proc, report = _run_demo(f"sqlite:///{tmp_path / 'demo.db'}", tmp_path, "--meters", "60", "--days", "30")
    _check_totals(report, 60)
    for heading in (
        "Reads ingested",
        "VEE findings by rule",
        "Bills and revenue by class",
        "Ledger trial balance",
    ):
        assert heading in proc.stdout
    assert "checks passed" in proc.stdout


@pytest.mark.postgres
def test_demo_on_postgresql(tmp_path, empty_pg_url):
    _, report = _run_demo(empty_pg_url, tmp_path, "--meters", "40", "--days", "30")
    _check_totals(report, 40)


def test_demo_refuses_a_database_with_data_unless_reset(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    _run_demo(url, tmp_path, "--meters", "20", "--days", "2")
    env = {**os.environ, "M2C_DATABASE_URL": url, "M2C_VAR_DIR": str(tmp_path / "var")}
    proc = subprocess.run(
        [sys.executable, "-m", "meter2cash.cli", "demo", "--meters", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "--reset" in proc.stderr
