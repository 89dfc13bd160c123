"""The main job end to end through the CLI: a small demo utility, on SQLite and on PostgreSQL;
and the demo's own database: it never writes to, let alone resets, a database it did not create."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy import insert as sql_insert

from conftest import PG_ADMIN_URL, _pg_admin
from meter2cash.cis.ledger.models import JournalEntry, JournalLine, LedgerAccount
from meter2cash.cis.parties.models import Account, Person
from meter2cash.db import normalise_url, upgrade
from meter2cash.demo_db import DEMO_PG_DATABASE, demo_database_url

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _m2c(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``m2c ARGS`` in ``tmp_path`` with its var directory there; ``env`` adds variables."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("M2C_")}
    base.update({"M2C_VAR_DIR": str(tmp_path / "var"), "COLUMNS": "200", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "meter2cash.cli", *args],
        env=base,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )


def _run_demo(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[str, dict]:
    report = tmp_path / "report.json"
    proc = _m2c(tmp_path, "demo", "--reset", "--json-out", str(report), *args, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads(report.read_text())


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
    # Prepaid: charged daily through the tariff, equal to the monthly statements to the paisa
    # (two uses of one rating kernel: a smoke test, not evidence that the kernel is right).
    pp = report["prepaid"]
    statements = sum(
        Decimal(t["amount"])
        for run in report["billing"]["runs"]
        for t in run["totals"]
        if t["kind"] == "prepaid"
    )
    assert Decimal(pp["charged"]) == statements > 0
    assert pp["days"] == 30 and pp["recharges"] >= pp["wallets"]
    # the connect and disconnect commands went to the simulated head-end process over MQTT and
    # every one came back settled; each reconnection counted is one whose relay was read back
    assert pp["head_end"].startswith("a simulated head-end process over MQTT")
    sent = pp["disconnect_requests"] + pp["reconnect_requests"]
    assert pp["head_end_commands"]["received"] >= sent > 0 and pp["commands_unsettled"] == 0
    assert 0 < pp["reconnects"]["executed"] <= pp["reconnect_requests"]
    # Postpaid: payments through several channels reduce receivables; the rest ages.
    pay = report["payments"]
    assert pay["paid_in_full"] + pay["paid_in_part"] + pay["unpaid"] == pay["bills"]
    assert {c["channel"] for c in pay["by_channel"]} <= {"cash", "cheque", "agent", "online"}
    assert report["problems"] == []


def test_demo_on_sqlite_in_its_own_database(tmp_path):
    stdout, report = _run_demo(tmp_path, "--meters", "60", "--days", "30")
    _check_totals(report, 60)
    own = tmp_path / "var" / "demo" / "meter2cash-demo.db"
    assert report["config"]["database"] == f"sqlite:///{own}" and own.exists()
    for heading in (
        "Reads ingested",
        "VEE findings by rule",
        "Bills and revenue by class",
        "Ledger trial balance",
    ):
        assert heading in stdout
    assert "checks passed" in stdout


def _server_database(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def new_pg_name() -> Iterator[str]:
    """The name of a PostgreSQL database that does not exist yet; dropped afterwards."""
    admin = _pg_admin()
    if admin is None:
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432")
    name = f"m2c_test_demo_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_demo_on_postgresql_creates_its_database_and_resets_only_it(tmp_path, new_pg_name):
    url = _server_database(new_pg_name)
    _, report = _run_demo(tmp_path, "--database", url, "--meters", "40", "--days", "30")
    _check_totals(report, 40)
    # --reset empties the database the demo created, and only then runs again
    _, again = _run_demo(tmp_path, "--database", url, "--meters", "5", "--days", "1")
    assert again["masterdata"]["entities"]["accounts"]["created"] == 5
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            assert len(conn.scalars(select(Account.number)).all()) == 5
    finally:
        engine.dispose()


def test_a_server_url_without_a_database_names_the_demo_s_own():
    assert demo_database_url("postgresql://postgres@127.0.0.1:5432") == (
        f"postgresql+psycopg://postgres@127.0.0.1:5432/{DEMO_PG_DATABASE}"
    )
    assert demo_database_url("postgresql://postgres@127.0.0.1:5432/other").endswith("/other")
    assert demo_database_url("sqlite:///var/x.db") == "sqlite:///var/x.db"


def test_demo_refuses_its_database_with_data_unless_reset(tmp_path):
    _run_demo(tmp_path, "--meters", "20", "--days", "2")
    proc = _m2c(tmp_path, "demo", "--meters", "5")
    assert proc.returncode == 2
    assert "demo.database_not_empty" in proc.stderr and "--reset" in proc.stderr


# --- a database of an operator's, pointed at by M2C_DATABASE_URL ------------------------------


def _operator_data(url: str) -> None:
    """A migrated database with a customer and a posted entry of its own."""
    upgrade(url)
    engine = create_engine(normalise_url(url))
    try:
        with engine.begin() as conn:
            person = conn.execute(sql_insert(Person).values(name="Real Customer")).inserted_primary_key[0]
            conn.execute(sql_insert(Account).values(number="ACC-REAL-1", person_id=person))
            conn.execute(sql_insert(LedgerAccount).values(code="1100", name="Receivables", type="asset"))
            conn.execute(sql_insert(LedgerAccount).values(code="4100", name="Revenue", type="income"))
            entry = conn.execute(
                sql_insert(JournalEntry).values(effective_date=date(2026, 10, 31), kind="bill")
            ).inserted_primary_key[0]
            for code, amount in (("1100", Decimal("532.73")), ("4100", Decimal("-532.73"))):
                conn.execute(
                    sql_insert(JournalLine).values(
                        entry_id=entry, ledger_account=code, amount=amount, currency="INR"
                    )
                )
    finally:
        engine.dispose()


def _everything(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order."""
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return {
                t: sorted(tuple(map(str, row)) for row in conn.execute(text(f'SELECT * FROM "{t}"')))
                for t in sorted(inspect(conn).get_table_names())
            }
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def operator_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An operator's database with data of its own (SQLite and PostgreSQL)."""
    if request.param == "sqlite":
        (tmp_path / "operator").mkdir()
        url = f"sqlite:///{tmp_path / 'operator' / 'meter2cash.db'}"
    else:
        url = str(request.getfixturevalue("empty_pg_url"))
    _operator_data(url)
    return url


def test_demo_reset_never_touches_the_database_m2c_database_url_names(tmp_path, operator_url):
    before = _everything(operator_url)
    assert before["account"] and before["journal_line"]
    env = {"M2C_DATABASE_URL": operator_url}
    # `make demo` (m2c demo --reset) with M2C_DATABASE_URL exported: the demo uses its own database
    _, report = _run_demo(tmp_path, "--meters", "5", "--days", "1", env=env)
    assert _everything(operator_url) == before
    assert report["config"]["database"].endswith("/demo/meter2cash-demo.db")
    # told explicitly to use that database, the demo refuses it, with or without --reset
    for reset in (["--reset"], []):
        proc = _m2c(tmp_path, "demo", *reset, "--meters", "5", "--days", "1", "--database", operator_url)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "demo.not_a_demo_database" in proc.stderr
        assert _everything(operator_url) == before
