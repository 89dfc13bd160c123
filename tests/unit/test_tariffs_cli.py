"""``m2c tariff validate`` and ``m2c bill calc`` on the example tariffs (no database)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from meter2cash.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tariffs"


def test_every_example_tariff_validates():
    files = sorted(str(p) for p in EXAMPLES.glob("*.toml"))
    r = CliRunner().invoke(app, ["tariff", "validate", *files])
    assert r.exit_code == 0, r.output
    assert r.output.count("ok ") == len(files) and "IND-KVAH" in r.output and "RES-NM" in r.output


def test_validate_names_the_bad_field(tmp_path):
    bad = tmp_path / "bad.toml"
    text = (EXAMPLES / "ind-kvah.toml").read_text().replace('penalty_percent = "1"', "penalty_percent = 1.5")
    bad.write_text(text)
    r = CliRunner().invoke(app, ["tariff", "validate", str(bad)])
    assert r.exit_code == 1
    assert "versions[0].power_factor.penalty_percent" in r.output and "quote" in r.output


def test_bill_calc_prints_the_kvah_bill_with_terms(tmp_path):
    det = tmp_path / "det.json"
    det.write_text(
        json.dumps(
            {"kwh_by_period": {"normal": 30000, "peak": 8000, "night": 12000}, "kvah_total": "57471.264",
             "max_demand_kw": 310, "max_demand_kw_by_period": {"peak": 290}, "contract_demand_kva": 400,
             "ratchet_demand_kw": 380, "period": "2026-11", "days_in_period": 30}
        )
    )  # fmt: skip
    args = ["bill", "calc", "--tariff", str(EXAMPLES / "ind-kvah.toml"), "--determinants", str(det)]
    r = CliRunner().invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["total"] == "736504.75" and out["terms"]["prompt_payment_rebate"] == "7365.05"
    shown = CliRunner().invoke(app, args)
    assert shown.exit_code == 0 and "Total INR 736,504.75" in shown.output and "{" not in shown.output
