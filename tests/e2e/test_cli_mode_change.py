"""m2c agreement change-mode / change-tariff through the CLI: the dated change, its settlement,
the terms table and the stable error codes."""

from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

from test_cli_agreement import load_examples
from typer.testing import CliRunner

from meter2cash.cli import app
from meter2cash.core.timeutil import utcnow


def test_change_mode_and_tariff(one_meter_db):
    runner = CliRunner()
    load_examples(runner)
    today = utcnow().astimezone(ZoneInfo("Asia/Kolkata")).date()
    paid = runner.invoke(app, ["pay", "ACC-1001", "75.50", "--channel", "cash"])
    assert paid.exit_code == 0, paid.output

    args = ["agreement", "change-mode", "SA-1001", "--to", "prepaid", "--reason", "consumer asked"]
    future = runner.invoke(app, [*args, "--from", (today + timedelta(days=3)).isoformat()])
    assert future.exit_code == 2 and "contract.mode_change_in_future" in future.output
    done = runner.invoke(app, [*args, "--from", today.isoformat(), "--by", "clerk-2"])
    assert done.exit_code == 0, done.output
    assert f"SA-1001: postpaid → prepaid from {today}; credit of 75.50 moved into the wallet" in done.output
    again = runner.invoke(app, [*args, "--from", today.isoformat()])
    assert again.exit_code == 2 and "contract.unchanged" in again.output

    tariff = ["agreement", "change-tariff", "SA-1001", "--from", "2027-01-01", "--tariff", "RES-PP"]
    moved = runner.invoke(app, [*tariff, "--reason", "prepaid tariff", "--json"])
    assert moved.exit_code == 0, moved.output
    out = json.loads(moved.output)
    assert (out["term"]["tariff_code"], out["previous_tariff_code"]) == ("RES-PP", "RES-LT1")
    unknown = runner.invoke(app, [*tariff[:-1], "NOPE", "--reason", "x"])
    assert unknown.exit_code == 2 and "contract.unknown_tariff" in unknown.output

    terms = runner.invoke(app, ["agreement", "terms", "SA-1001", "--json"])
    rows = json.loads(terms.output)["terms"]
    assert [(t["effective_from"], t["payment_mode"], t["tariff_code"]) for t in rows] == [
        ("2026-01-05", "postpaid", "RES-LT1"),
        (today.isoformat(), "prepaid", "RES-LT1"),
        ("2027-01-01", "prepaid", "RES-PP"),
    ]
    wallet = runner.invoke(app, ["wallet", "show", "ACC-1001", "--json"])
    assert wallet.exit_code == 0, wallet.output
    assert "75.50" in wallet.output
