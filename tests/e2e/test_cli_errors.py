"""Errors of any command: one line on stderr with the stable code and exit code 2, never a
traceback (unless asked for with --debug or M2C_DEBUG=1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meter2cash.cli import app
from meter2cash.config import get_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UNREACHABLE = "postgresql://postgres:s3cret-pw@127.0.0.1:1/x"  # nothing listens on port 1


@pytest.fixture
def fresh_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("M2C_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    monkeypatch.delenv("M2C_DEBUG", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def one_error(args: list[str], code: str) -> str:
    """Run ``m2c ARGS``: exit 2, stderr one line ``error CODE: …``, no traceback; that line."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error {code}: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["bill-run", "--period", "2026-13"],
        ["bill-run", "--period", "2026-1"],
        ["rebill", "--period", "2026/10"],
        ["bill", "list", "--period", "0000-01"],
        ["bill", "documents", "--period", "2026-00"],
    ],
)
def test_a_bad_period_is_one_line(fresh_settings, args):
    line = one_error(args, "period.invalid")
    assert args[-1] in line and ("YYYY-MM" in line or "lies outside" in line)


def test_a_tariff_file_that_is_not_utf8(fresh_settings, tmp_path):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('code = "CAFÉ"\n'.encode("latin-1"))  # É is the single byte 0xc9, the 12th (offset 11)
    for command in ("validate", "load"):
        line = one_error(["tariff", command, str(bad)], "input.not_utf8")
        assert str(bad) in line and "offset 11" in line and "0xc9" in line
    good = str(EXAMPLES / "tariffs" / "res-lt1.toml")
    both = CliRunner().invoke(app, ["tariff", "validate", good, str(bad)])  # the good one is still checked
    assert both.exit_code == 2 and "ok " in both.stdout and "input.not_utf8" in both.stderr


def test_json_nested_100000_deep(fresh_settings, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    tariff = str(EXAMPLES / "tariffs" / "res-lt1.toml")
    line = one_error(["bill", "calc", "--tariff", tariff, "--determinants", str(deep)], "input.too_deep")
    assert str(deep) in line
    toml = tmp_path / "deep.toml"
    toml.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert str(toml) in one_error(["tariff", "validate", str(toml)], "input.too_deep")


def test_master_data_nested_too_deep(fresh_settings, tmp_path):
    from meter2cash.db import upgrade

    url = f"sqlite:///{tmp_path / 'm2c.db'}"
    upgrade(url)
    fresh_settings.setenv("M2C_DATABASE_URL", url)
    get_settings.cache_clear()
    deep = tmp_path / "bundle.json"
    deep.write_text('{"persons": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert str(deep) in one_error(["masterdata", "load", str(deep)], "input.too_deep")


@pytest.mark.parametrize("args", [["bill", "list"], ["bill-run", "--period", "2026-09"], ["db", "upgrade"]])
def test_an_unreachable_postgresql_names_the_host_not_the_password(fresh_settings, args):
    fresh_settings.setenv("M2C_DATABASE_URL", UNREACHABLE)
    get_settings.cache_clear()
    line = one_error(args, "db.unreachable")
    assert "127.0.0.1:1/x" in line and "s3cret-pw" not in line


def test_the_installed_command_prints_one_line_for_an_unreachable_database():
    """The real entry point (not the test runner): one line on stderr, exit 2."""
    env = {**os.environ, "M2C_DATABASE_URL": UNREACHABLE, "COLUMNS": "80"}
    env.pop("M2C_DEBUG", None)
    done = subprocess.run(
        [sys.executable, "-m", "meter2cash.cli", "bill-run", "--period", "2026-09"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error db.unreachable: "), done.stderr
    assert "s3cret-pw" not in done.stderr and done.stdout == ""


def test_an_unexpected_error_is_one_line_with_a_hint_and_debug_shows_it(fresh_settings, tmp_path):
    from meter2cash.db import upgrade

    url = f"sqlite:///{tmp_path / 'm2c.db'}"
    upgrade(url)
    fresh_settings.setenv("M2C_DATABASE_URL", url)
    get_settings.cache_clear()

    def broken(*args, **kwargs):
        raise RuntimeError("the ledger caught fire")

    fresh_settings.setattr("meter2cash.cis.ledger.journal.trial_balance", broken)
    line = one_error(["ledger", "trial-balance"], "internal.error")
    assert "RuntimeError: the ledger caught fire" in line and "--debug" in line and "M2C_DEBUG=1" in line

    debug = CliRunner().invoke(app, ["--debug", "ledger", "trial-balance"])
    assert isinstance(debug.exception, RuntimeError)  # the traceback is shown, not a line
    fresh_settings.setenv("M2C_DEBUG", "1")
    by_env = CliRunner().invoke(app, ["ledger", "trial-balance"])
    assert isinstance(by_env.exception, RuntimeError)


def test_errors_of_the_services_keep_their_codes(fresh_settings, tmp_path):
    from meter2cash.db import upgrade

    url = f"sqlite:///{tmp_path / 'm2c.db'}"
    fresh_settings.setenv("M2C_DATABASE_URL", url)
    get_settings.cache_clear()
    assert "db upgrade" in one_error(["bill", "list"], "db.not_migrated")
    upgrade(url)
    one_error(["bill", "show", "B-NOPE"], "bill.not_found")
    one_error(["wallet", "show", "SA-NOPE"], "wallet.not_found")
    one_error(["pay", "ACC-1", "1e999"], "money.invalid")
    one_error(["tariff", "show", "RES-LT1", "--on", "2026-02-30"], "date.invalid")
    missing = tmp_path / "missing.toml"
    assert str(missing) in one_error(["tariff", "load", str(missing)], "input.unreadable")
