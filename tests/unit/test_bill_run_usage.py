"""The bill run's rating over the usage port, with an in-memory usage source: no database.

Hand calculations (INR), RES-LT1 (telescopic, fixed 50 + 20 per kW, duty 5 % of energy and
fixed), a full October, 2 kW sanctioned:
    250 kWh: fixed 50 + 40 = 90; energy 100 × 3.00 + 150 × 4.50 = 975.00; subtotal 1065.00;
             duty 53.25; total 1118.25
    80 kWh:  fixed 90; energy 80 × 3.00 = 240.00; subtotal 330.00; duty 16.50; total 346.50
    400 kWh: fixed 90; energy 300 + 900 + 100 × 6.50 = 1850.00; subtotal 1940.00; duty 97.00;
             total 2037.00
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from fakes import MemoryUsage, Usage
from meter2cash.cis.billing import run as billing
from meter2cash.cis.billing.periods import billing_period
from meter2cash.cis.billing.planning import Agreement, Job
from meter2cash.cis.tariffs.loader import load_tariff_file

TZ = "Asia/Kolkata"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tariffs"
PERIOD = billing_period("2026-10", TZ)


def job(k: int, code: str) -> Job:
    a = Agreement(
        k, f"SA-{k}", k, k, "RES-LT1", "postpaid", Decimal("2"), None, date(2026, 1, 1), None,
        "residential", party={"service_point": code},
    )  # fmt: skip
    return Job(a, 1, PERIOD.first, PERIOD.last, 1, Decimal("2"))


def rate(jobs: list[Job], usage: MemoryUsage) -> tuple[dict[str, Decimal], list[dict], list]:
    versions = {1: load_tariff_file(EXAMPLES / "res-lt1.toml").versions[0]}
    errors: list[dict] = []
    chunks = list(billing.rate_jobs(None, jobs, PERIOD, TZ, versions, errors, usage))  # type: ignore[arg-type]
    totals = {
        j.a.number: rc.rated.money(int(rc.rated.total[k])) for rc in chunks for k, j in enumerate(rc.jobs)
    }
    return totals, errors, chunks


def test_bills_are_rated_from_the_usage_the_source_gives() -> None:
    usage = MemoryUsage(
        {"SP-1": Usage({"all": 250.0}), "SP-2": Usage({"all": 80.0}), "SP-3": Usage({"all": 400.0})}
    )
    totals, errors, _ = rate([job(1, "SP-1"), job(2, "SP-2"), job(3, "SP-3")], usage)
    assert errors == []
    assert totals == {"SA-1": Decimal("1118.25"), "SA-2": Decimal("346.50"), "SA-3": Decimal("2037.00")}


def test_the_query_names_each_service_point_its_days_and_the_tariff_calendar() -> None:
    usage = MemoryUsage({"SP-1": Usage({"all": 250.0})})
    rate([job(1, "SP-1")], usage)
    (q,) = usage.queries
    assert list(q.service_point_codes) == ["SP-1"] and list(q.service_point_ids) == [1]
    assert (q.first[0], q.last[0]) == (date(2026, 10, 1), date(2026, 10, 31))
    assert (q.start, q.end) == (PERIOD.start, PERIOD.end) and q.estimate_gaps


def test_problems_and_rows_without_data_become_billing_errors() -> None:
    usage = MemoryUsage({"SP-1": Usage({"all": 250.0}), "SP-2": Usage({"all": 0.0}, intervals=0)})
    totals, errors, _ = rate([job(1, "SP-1"), job(2, "SP-2"), job(3, "SP-9")], usage)
    assert totals == {"SA-1": Decimal("1118.25")}
    assert sorted((e["service_agreement"], e["code"]) for e in errors) == [
        ("SA-2", "billing.no_data"),
        ("SA-3", "billing.no_meter"),
    ]


def test_every_batch_is_rated_and_carries_the_source_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(billing, "CHUNK_AGREEMENTS", 2)
    held = {
        f"SP-{k}": Usage({"all": 250.0}, estimated_share=0.25 if k == 4 else 0.0, version=k)
        for k in range(1, 6)
    }
    totals, errors, chunks = rate([job(k, f"SP-{k}") for k in range(1, 6)], MemoryUsage(held))
    assert errors == [] and len(chunks) == 3
    assert totals == {f"SA-{k}": Decimal("1118.25") for k in range(1, 6)}
    dets = {j.a.number: d for rc in chunks for j, d in zip(rc.jobs, rc.determinants, strict=True)}
    assert dets["SA-3"]["data_version"] == {"memory": "SP-3", "version": 3}
    assert dets["SA-1"]["kwh_total"] == 250.0 and dets["SA-1"]["days_active"] == 31
    estimated = {j.a.number: e for rc in chunks for j, e in zip(rc.jobs, rc.estimated, strict=True)}
    assert [n for n, e in estimated.items() if e] == ["SA-4"]
