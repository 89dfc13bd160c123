"""m2c agreement change-load / terms through the CLI, and the bill run that follows."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from meter2cash.cli import app

ROOT = Path(__file__).resolve().parents[2]


def load_examples(runner: CliRunner, tariffs: str = "*.toml") -> None:
    """The example tariffs matching ``tariffs``, then the small master-data bundle."""
    files = sorted(str(p) for p in (ROOT / "examples" / "tariffs").glob(tariffs))
    loaded = runner.invoke(app, ["tariff", "load", *files])
    assert loaded.exit_code == 0, loaded.output
    loaded = runner.invoke(app, ["masterdata", "load", str(ROOT / "examples" / "masterdata" / "small.json")])
    assert loaded.exit_code == 0, loaded.output


def test_change_load_then_terms(one_meter_db):
    runner = CliRunner()
    load_examples(runner)
    before = runner.invoke(app, ["agreement", "terms", "SA-1002"])
    assert (
        before.exit_code == 0
        and "no changes of terms; sanctioned load 25 kW, contract demand 30 kVA" in before.output
    )

    args = ["agreement", "change-load", "SA-1002", "--from", "2026-10-11", "--kw", "40", "--kva", "45"]
    done = runner.invoke(app, [*args, "--reason", "second compressor", "--by", "clerk-7"])
    assert done.exit_code == 0, done.output
    assert "SA-1002: sanctioned load 40 kW, contract demand 45 kVA from 2026-10-11" in done.output

    terms = runner.invoke(app, ["agreement", "terms", "SA-1002"])
    assert terms.exit_code == 0
    rows = [ln for ln in terms.output.splitlines() if "2026-" in ln]
    assert len(rows) == 2
    assert "2026-01-06" in rows[0] and "25" in rows[0] and "30" in rows[0]
    assert (
        "2026-10-11" in rows[1]
        and "40" in rows[1]
        and "second compressor" in rows[1]
        and "clerk-7" in rows[1]
    )

    as_json = runner.invoke(app, ["agreement", "terms", "SA-1002", "--json"])
    assert '"sanctioned_kw": "40"' in as_json.output

    again = runner.invoke(app, [*args, "--reason", "twice"])
    assert again.exit_code == 2 and "contract.duplicate_term" in again.output
    bad = runner.invoke(app, ["agreement", "change-load", "SA-1002", "--from", "2026-11-01", "--kw", "-1",
                              "--reason", "x"])  # fmt: skip
    assert bad.exit_code == 2 and "contract.invalid_load" in bad.output
    early = runner.invoke(app, ["agreement", "change-load", "SA-1002", "--from", "2025-12-31", "--kw", "9",
                                "--reason", "x"])  # fmt: skip
    assert early.exit_code == 2 and "contract.before_start" in early.output
    unknown = runner.invoke(app, ["agreement", "terms", "SA-9999"])
    assert unknown.exit_code == 2 and "service_agreement.not_found" in unknown.output


def test_change_load_with_rebill(one_meter_db, tmp_path):
    """A bill for October, then a load change from 11 October: --rebill cancels and rebills it."""
    from datetime import UTC, datetime, timedelta

    runner = CliRunner()
    load_examples(runner)
    lines = ["meter,channel,start,value"]
    t = datetime(2026, 9, 30, 18, 30, tzinfo=UTC)  # 1 October 00:00 in Asia/Kolkata
    for i in range(31 * 96):
        start = (t + timedelta(minutes=15 * i)).isoformat()
        lines.append(f"MTR-000101,kwh_import_15m,{start},{0.05 + (i % 7) * 0.02:.2f}")
    reads = tmp_path / "reads.csv"
    reads.write_text("\n".join(lines) + "\n")
    assert runner.invoke(app, ["ingest", str(reads)]).exit_code == 0
    assert runner.invoke(app, ["vee", "run"]).exit_code == 0
    billed = runner.invoke(app, ["bill-run", "--period", "2026-10"])
    # only MTR-000101 has readings: SA-1002 and SA-1003 are listed as not billed, exit 1
    assert billed.exit_code == 1 and "1 bills" in billed.output, billed.output
    assert "SA-1002: billing.no_data" in billed.output and "2 not billed" in billed.output
    plain = runner.invoke(
        app,
        ["agreement", "change-load", "SA-1001", "--from", "2026-10-11", "--kw", "7", "--reason", "survey"],
    )
    assert plain.exit_code == 0 and "B-2026-10-000001 (rebill them with --rebill)" in plain.output
    done = runner.invoke(
        app,
        [
            "agreement",
            "change-load",
            "SA-1001",
            "--from",
            "2026-10-21",
            "--kw",
            "8",
            "--reason",
            "again",
            "--rebill",
        ],
    )
    assert done.exit_code == 0, done.output
    assert "rebilled B-2026-10-000001: new bill(s) B-2026-10-000002" in done.output
    shown = runner.invoke(app, ["bill", "show", "B-2026-10-000002"])
    assert shown.exit_code == 0 and "(10/31 days)" in shown.output and "(11/31 days)" in shown.output
