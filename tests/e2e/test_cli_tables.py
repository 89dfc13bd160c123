"""Every table the CLI prints fits 80 columns and shows its numbers whole; money in minor units;
``--json`` for machines on every command that prints a result.

One small utility is built once (the README's example tariffs, master data and readings; a bill
run, a payment, a prepaid day, a backdated load change rebilled) and every command is run on it
with the console 80 columns wide, as ``COLUMNS=80`` makes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from meter2cash.cli import app
from meter2cash.cli.common import console, err_console
from meter2cash.cli.render import Key, Num, table
from meter2cash.config import get_settings
from meter2cash.db import upgrade

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
#: The commercial TOU bill of the README tour, which the tour pays in full (README: m2c pay).
COMMERCIAL_TOTAL = "25,984.34"


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, f"m2c {' '.join(args)} → {result.exit_code}\n{result.output}"
    return result.output


@pytest.fixture(scope="module")
def utility(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('tables') / 'm2c.db'}"
    upgrade(url)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("M2C_DATABASE_URL", url)
        mp.setenv("M2C_TIMEZONE", "Asia/Kolkata")
        mp.setenv("M2C_CURRENCY", "INR")
        get_settings.cache_clear()
        run("tariff", "load", *sorted(str(p) for p in (EXAMPLES / "tariffs").glob("*.toml")))
        run("masterdata", "load", str(EXAMPLES / "masterdata" / "small.json"))
        run("ingest", str(EXAMPLES / "readings" / "small-2026-09.json"))
        run("vee", "run")
        run("bill-run", "--period", "2026-09")
        run("pay", "ACC-1002", "25984.34", "--channel", "cash", "--on", "2026-10-05")
        run("prepaid", "run-daily", "--date", "2026-09-30")
        change = ["agreement", "change-load", "SA-1002", "--from", "2026-09-11", "--kw", "40"]
        run(*change, "--reason", "more load", "--rebill")
        yield url
    get_settings.cache_clear()


@pytest.fixture
def at80(utility: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("M2C_DATABASE_URL", utility)
    monkeypatch.setattr(console, "width", 80)
    monkeypatch.setattr(err_console, "width", 80)
    get_settings.cache_clear()
    return utility


def assert_fits(output: str) -> None:
    """Every line at most 80 cells, and no cell cut short with an ellipsis."""
    for line in output.splitlines():
        assert len(line) <= 80, f"{len(line)} columns: {line!r}"
    assert "…" not in output, output


def grouped(amount: str) -> str:
    return f"{Decimal(amount):,.2f}"


TABLE_COMMANDS = [
    ("bill", "list"),
    ("bill", "list", "--status", "cancelled"),
    ("bill", "show", "B-2026-09-000002"),
    ("bill", "show", "B-2026-09-000004"),
    ("bill", "calc", "--tariff", str(EXAMPLES / "tariffs" / "ind-kvah.toml"), "--determinants", "DET"),
    ("tariff", "show", "COM-TOU", "--on", "2026-10-01"),
    ("tariff", "show", "IND-KVAH", "--on", "2026-10-01"),
    ("ledger", "trial-balance"),
    ("ledger", "statement", "ACC-1002"),
    ("ledger", "ageing", "--as-of", "2026-12-31"),
    ("ledger", "collections", "--from", "2026-09-01", "--to", "2026-12-31"),
    ("ledger", "revenue", "--from", "2026-09-01", "--to", "2026-12-31"),
    ("masterdata", "show"),
    ("outbox", "status"),
    ("prepaid", "reconnects"),
    ("wallet", "show", "SA-1003"),
    ("agreement", "terms", "SA-1002"),
    ("hes", "rereads"),
]  # fmt: skip


#: Determinants of an industrial kVAh bill (those of tests/unit/test_tariffs_cli.py).
DETERMINANTS = {
    "kwh_by_period": {"normal": 30000, "peak": 8000, "night": 12000}, "kvah_total": "57471.264",
    "max_demand_kw": 310, "max_demand_kw_by_period": {"peak": 290}, "contract_demand_kva": 400,
    "ratchet_demand_kw": 380, "period": "2026-11", "days_in_period": 30,
}  # fmt: skip


@pytest.mark.parametrize("args", TABLE_COMMANDS, ids=lambda a: " ".join(a[:3]))
def test_every_table_fits_80_columns(at80, args, tmp_path):
    det = tmp_path / "det.json"
    det.write_text(json.dumps(DETERMINANTS))
    out = run(*(str(det) if a == "DET" else a for a in args))
    assert_fits(out)
    if args[:2] == ("bill", "calc"):
        assert "736,504.75" in out  # the total of tests/unit/test_tariffs_cli.py, now grouped


def test_writing_commands_print_tables_that_fit(at80):
    """The commands that change things print their results as tables too (not raw JSON)."""
    for args in (
        ("masterdata", "load", str(EXAMPLES / "masterdata" / "small.json")),
        ("tariff", "load", str(EXAMPLES / "tariffs" / "res-lt1.toml")),
        ("prepaid", "run-daily", "--date", "2026-09-29"),
        ("collections", "run", "--date", "2026-12-31"),
        ("notify", "send"),
        ("prepaid", "time-out-commands"),
        ("bill-run", "--period", "2026-09"),
        ("bill-run", "--period", "2026-09", "--shadow-tariff", str(EXAMPLES / "tariffs" / "res-lt1.toml")),
    ):
        out = run(*args)
        assert_fits(out)
        assert not out.lstrip().startswith("{"), out


def test_numbers_are_whole_and_money_in_minor_units(at80):
    """The figures of the JSON output appear whole in the tables, grouped, with two decimals."""
    listed = json.loads(run("bill", "list", "--json"))
    table_text = run("bill", "list")
    assert listed["total"] == 4
    for b in listed["items"]:
        assert re.fullmatch(r"-?\d+\.\d{2}", b["total"]), b["total"]  # INR: two places, never four
        assert b["number"] in table_text and grouped(b["total"]) in table_text
    cancelled = next(b for b in listed["items"] if b["status"] == "cancelled")
    assert grouped(cancelled["total"]) == COMMERCIAL_TOTAL

    tb = json.loads(run("ledger", "trial-balance", "--json"))
    shown = run("ledger", "trial-balance")
    for r in tb["rows"]:
        for key in ("debit", "credit", "balance"):
            assert re.fullmatch(r"-?\d+\.\d{2}", r[key]) and grouped(r[key]) in shown
    assert tb["total"] == "0.00"
    assert not re.search(r"\d\.\d{4}\b", shown)  # not 532.7300

    age = json.loads(run("ledger", "ageing", "--as-of", "2026-12-31", "--json"))
    shown = run("ledger", "ageing", "--as-of", "2026-12-31")
    for row in age["rows"]:
        for key in ("0-30", "31-60", "61-90", "90+", "credit", "total"):
            assert grouped(row[key]) in shown


def test_a_table_too_wide_for_its_numbers_changes_layout_and_cuts_none():
    """Seven twelve-digit amounts cannot sit side by side in 80 columns: the table loses its box,
    then becomes one block per row; every figure stays whole in every layout."""
    big = "123,456,789,012.34"
    rep = table(
        "Ageing", Key("Account"), *(Num(h) for h in ("0-30", "31-60", "61-90", "90+", "credit", "total"))
    )
    rep.add_row("ACC-1", *([big] * 6))
    rep.add_row("ACC-2", *(["1.00"] * 6))
    for width in (200, 120, 80, 40):
        c = Console(width=width, record=True)
        with c.capture() as cap:
            c.print(rep)
        out = cap.get()
        assert out.count(big) == 6 and "…" not in out, out
        assert max(len(line) for line in out.splitlines()) <= width


def test_text_wraps_but_numbers_and_keys_do_not():
    rep = table("Statement", Key("Reference"), "Memo", Num("Amount"))
    rep.add_row("R-20261207-000001", "a long memo " * 12, "1,234,567.89")
    c = Console(width=50)
    with c.capture() as cap:
        c.print(rep)
    out = cap.get()
    assert "R-20261207-000001" in out and "1,234,567.89" in out
    assert max(len(line) for line in out.splitlines()) <= 50 and "…" not in out


def test_json_on_every_command_that_prints_results(at80):
    for args in (
        ("prepaid", "run-daily", "--date", "2026-09-28"),
        ("collections", "run", "--date", "2026-12-31"),
        ("notify", "send"),
        ("prepaid", "time-out-commands"),
        ("prepaid", "reconnects"),
        ("wallet", "show", "ACC-1003"),
        ("bill", "show", "B-2026-09-000004"),
        ("ledger", "statement", "ACC-1002"),
        ("ledger", "collections", "--from", "2026-09-01", "--to", "2026-12-31"),
        ("ledger", "revenue", "--from", "2026-09-01", "--to", "2026-12-31"),
        ("tariff", "show", "RES-LT1"),
        ("tariff", "validate", str(EXAMPLES / "tariffs" / "res-lt1.toml")),
        ("masterdata", "show"),
        ("outbox", "status"),
        ("agreement", "terms", "SA-1002"),
        ("hes", "rereads"),
        ("db", "current"),
        ("bill-run", "--period", "2026-09"),
        ("rebill", "--dry-run"),
    ):
        out = json.loads(run(*args, "--json"))
        assert isinstance(out, dict), args
    daily = json.loads(run("prepaid", "run-daily", "--date", "2026-09-27", "--json"))
    assert daily["day"] == "2026-09-27" and re.fullmatch(r"\d+\.\d{2}", daily["amount"])
    dunning = json.loads(run("collections", "run", "--date", "2026-12-31", "--json"))
    assert dunning["on"] == "2026-12-31"


def test_bill_list_filters_newest_first(at80):
    def numbers(*args: str) -> list[str]:
        return [b["number"] for b in json.loads(run("bill", "list", *args, "--json"))["items"]]

    # the rebill of B-2026-09-000002 (ACC-1002) was issued last, as B-2026-09-000004
    assert numbers("--account", "ACC-1002") == ["B-2026-09-000004", "B-2026-09-000002"]
    assert numbers("--status", "cancelled") == ["B-2026-09-000002"]
    assert numbers("--kind", "prepaid") == ["B-2026-09-000003"]  # SA-1003 is the prepaid agreement
    assert numbers("--period", "2026-08") == []
    assert set(numbers("--period", "2026-09")) == {f"B-2026-09-00000{i}" for i in range(1, 5)}
    every = json.loads(run("bill", "list", "--json"))["items"]
    estimated = [b["number"] for b in every if b["estimated"]]
    assert numbers("--estimated") == estimated and not set(numbers("--actual")) & set(estimated)
    one = json.loads(run("bill", "list", "--limit", "1", "--json"))
    assert one["total"] == 4 and [b["number"] for b in one["items"]] == ["B-2026-09-000004"]
    assert "no bills match" in run("bill", "list", "--account", "ACC-9999")


def test_a_cancelled_bill_says_so_and_names_its_replacement(at80):
    old = run("bill", "show", "B-2026-09-000002")
    words = " ".join(old.split())  # the notice wraps at 80 columns
    assert "CANCELLED" in old.splitlines()[0] and "replaced by B-2026-09-000004" in words
    assert "load changed from 2026-09-11" in words
    new = run("bill", "show", "B-2026-09-000004")
    assert "CANCELLED" not in new and "replaces cancelled bill B-2026-09-000002" in new
    shown = json.loads(run("bill", "show", "B-2026-09-000004", "--json"))
    assert shown["replaces"] == "B-2026-09-000002" and shown["status"] == "issued"
    assert Decimal(shown["amount_due"]) == Decimal(shown["total"]) + Decimal(shown["adjustment"])
    assert json.loads(run("bill", "show", "B-2026-09-000002", "--json"))["replaced_by"] == [
        "B-2026-09-000004"
    ]


def test_wallet_show_by_agreement_or_account(at80):
    by_sa = json.loads(run("wallet", "show", "SA-1003", "--charges", "366", "--json"))
    by_acc = json.loads(run("wallet", "show", "ACC-1003", "--charges", "366", "--json"))
    assert by_sa == by_acc and by_sa["service_agreement"] == "SA-1003" and by_sa["account"] == "ACC-1003"
    # no recharge yet: the balance in the ledger is minus the daily charges recorded
    charged = sum(Decimal(c["amount"]) for c in by_sa["charges"])
    assert by_sa["recharges"] == [] and Decimal(by_sa["balance"]) == -charged < 0
    assert by_sa["supply"] in ("connected", "disconnected") and by_sa["alert"] in ("30%", "10%", "0%")

    paid = run("pay", "ACC-1003", "1000.00", "--purpose", "recharge", "--on", "2026-10-01")
    receipt = re.search(r"receipt (R-\d{8}-\d{6})", paid).group(1)
    after = json.loads(run("wallet", "show", "SA-1003", "--charges", "366", "--json"))
    assert Decimal(after["balance"]) == Decimal(by_sa["balance"]) + 1000
    assert [r["receipt_number"] for r in after["recharges"]] == [receipt]
    assert after["recharges"][0]["amount"] == "1000.00" and after["last_recharge"] == "1000.00"
    shown = run("wallet", "show", "SA-1003")
    assert_fits(shown)
    assert f"INR {grouped(after['balance'])}" in shown and receipt in shown and "Daily charges" in shown
