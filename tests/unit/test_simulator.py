from __future__ import annotations

import json
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd

from meter2cash.demo import DemoConfig, demo_window
from meter2cash.hes.delivery import register_reads, write_delivery
from meter2cash.hes.simulator import FleetConfig, build_fleet, inject_faults, load_shapes, simulate_load

TZ = "Asia/Kolkata"
START = datetime(2026, 8, 31, tzinfo=UTC)


def _fleet(n: int = 60):
    return build_fleet(FleetConfig(meters=n, seed=1), date(2026, 9, 1), TZ)


def test_fleet_is_reproducible_and_consistent():
    a, b = _fleet(), _fleet()
    assert a.bundle == b.bundle
    bundle = a.bundle
    assert len(bundle["meters"]) == len(bundle["service_agreements"]) == 60
    sps = {sp["code"] for sp in bundle["service_points"]}
    assert {i["service_point"] for i in bundle["installations"]} == sps
    assert {sa["tariff_code"] for sa in bundle["service_agreements"]} <= {"RES-LT1", "RES-PP", "COM-TOU"}
    prepaid = [sa for sa in bundle["service_agreements"] if sa["payment_mode"] == "prepaid"]
    assert all(sa["tariff_code"] == "RES-PP" for sa in prepaid)


def test_load_shapes_peak_in_the_local_evening_and_business_hours():
    epoch = np.arange(0, 7 * 86400, 900, dtype=np.int64) + int(datetime(2026, 9, 7, tzinfo=UTC).timestamp())
    shapes = load_shapes(epoch, TZ)
    local_hour = pd.to_datetime(epoch, unit="s", utc=True).tz_convert(TZ).hour
    res = pd.Series(shapes["residential"]).groupby(local_hour).mean()
    com = pd.Series(shapes["commercial"]).groupby(local_hour).mean()
    assert res.idxmax() in (19, 20, 21)
    assert 9 <= com.idxmax() < 19
    assert abs(shapes["residential"].mean() - 1) < 1e-9


def test_simulated_load_is_non_negative_wh_rounded_and_plausible():
    fleet = _fleet(200)
    true = simulate_load(fleet, START, 96 * 7, TZ)
    assert true.shape == (200, 672)
    assert (true >= 0).all()
    np.testing.assert_array_equal(true, np.round(true, 3))
    daily = true.sum(axis=1) / 7
    res = fleet.customer_class == "residential"
    assert 2 < np.median(daily[res]) < 15
    assert np.median(daily[~res]) > 20


def test_faults_are_injected_where_logged():
    fleet = _fleet(200)
    true = simulate_load(fleet, START, 96 * 7, TZ)
    delivered, late, log = inject_faults(true)
    for m, s, n in log.gaps:
        assert np.isnan(delivered[m, s : s + n]).all()
    for m, s in log.negatives:
        assert delivered[m, s] < 0
    for m, s in log.spikes:
        assert delivered[m, s] > 10 * np.nanmax(true[m]) or (m, s) in [(x[0], x[1]) for x in log.negatives]
    m, s, n = log.stuck[0]
    assert len(set(delivered[m, s : s + n].tolist())) == 1
    assert late.sum() == sum(x[2] for x in log.late)


def test_register_reads_are_cumulative():
    true = np.ones((2, 96 * 3))
    regs = register_reads(true, np.array([100.0, 0.0]))
    np.testing.assert_allclose(regs, [[196, 292, 388], [96, 192, 288]])


def test_delivery_files_hold_every_on_time_value(tmp_path):
    fleet = _fleet(40)
    true = simulate_load(fleet, START, 96 * 3, TZ)
    delivered, late, _ = inject_faults(true)
    result = write_delivery(fleet, delivered, late, true, START, tmp_path)
    csvs = [p for p in result.on_time if p.suffix == ".csv" and "resend" not in p.name]
    jsons = [p for p in result.on_time if p.suffix == ".json"]
    assert len(csvs) == len(jsons) == 3
    assert any("resend" in p.name for p in result.on_time)
    frame = pd.concat([pd.read_csv(p, dtype=str) for p in csvs])
    intervals = frame[frame["channel"] == "kwh_import_15m"]
    doc = json.loads(jsons[0].read_text())
    assert {"source", "readings", "registers"} <= doc.keys()
    assert len(doc["readings"][0]["values"]) == 96
    assert result.malformed_lines == 4
    assert (~intervals["start"].str.endswith("Z")).sum() <= result.malformed_lines


def test_demo_window_ends_at_the_local_month_end():
    start, end, months = demo_window(DemoConfig(days=30, month="2026-09"), TZ)
    assert start == datetime(2026, 8, 31, 18, 30, tzinfo=UTC)
    assert end == datetime(2026, 9, 30, 18, 30, tzinfo=UTC)
    assert months == ["2026-09"]
    _, _, months = demo_window(DemoConfig(days=45, month="2026-09"), TZ)
    assert months == ["2026-08", "2026-09"]
