"""The daily prepaid run on PostgreSQL: N wallets (default 100,000) charged for one day.

Creates its own database ``m2c_bench_<random>`` on 127.0.0.1:5432 (override the server with
``M2C_BENCH_PG``), loads the residential prepaid tariff, N prepaid agreements with a meter and a
30-minute kWh channel each, one local day of interval data (two UTC channel-days per channel) and a
recharge per wallet; then times :func:`run_daily` (read, rate, post, alerts) in a transaction that is
rolled back after each repeat, against baselines measured in the same run: reading the same interval
data alone (``read_window``) and a plain float NumPy charge over it. Drops the database at the end.

Run: ``python benchmarks/bench_prepaid.py [--quick] [--n N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, insert, text

from meter2cash.cis.ledger import CASH, WALLET, EntrySpec, ensure_chart, post_many, trial_balance
from meter2cash.cis.models import Account, Person, Premise, ServiceAgreement, ServicePoint
from meter2cash.cis.prepaid import ensure_wallets, local_midnight, run_daily
from meter2cash.cis.tariffs import load_tariff_file, store_tariff
from meter2cash.db import make_engine, session_factory, upgrade
from meter2cash.mdm.models import Channel, ChannelDay, Installation, Meter
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore, encode_flags, encode_values

ADMIN = os.environ.get("M2C_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TARIFF = Path(__file__).resolve().parents[1] / "examples" / "tariffs" / "res-pp.toml"
TZ = "Asia/Kolkata"
DAY = date(2026, 10, 7)
BATCH = 20_000


def setup(url: str, n: int) -> list[int]:
    """Master data, tariff, one day of data and a recharge per wallet; returns the channel ids."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    rng = np.random.default_rng(7)
    with sessions() as s:
        store_tariff(s, load_tariff_file(TARIFF), TARIFF.read_text())
        rt = ensure_catalogue(s)["kwh_import_30m"].id
        ensure_chart(s)
        for table, rows in (
            (Person, [{"id": i + 1, "name": f"C{i}", "phone": f"+91{9000000000 + i}"} for i in range(n)]),
            (Premise, [{"id": i + 1, "code": f"P{i}"} for i in range(n)]),
            (Account, [{"id": i + 1, "number": f"A{i:07d}", "person_id": i + 1} for i in range(n)]),
            (ServicePoint, [{"id": i + 1, "code": f"SP{i}", "premise_id": i + 1} for i in range(n)]),
            (Meter, [{"id": i + 1, "serial": f"M{i}", "status": "installed"} for i in range(n)]),
            (Channel, [{"id": i + 1, "meter_id": i + 1, "reading_type_id": rt} for i in range(n)]),
            (
                Installation,
                [
                    {
                        "meter_id": i + 1,
                        "service_point_id": i + 1,
                        "installed_at": datetime(2026, 1, 1, tzinfo=UTC),
                    }
                    for i in range(n)
                ],
            ),
            (
                ServiceAgreement,
                [
                    {
                        "number": f"SA{i:07d}",
                        "account_id": i + 1,
                        "service_point_id": i + 1,
                        "tariff_code": "RES-PP",
                        "payment_mode": "prepaid",
                        "sanctioned_load_kw": Decimal("2"),
                        "start_date": date(2026, 1, 1),
                    }
                    for i in range(n)
                ],
            ),
        ):
            for k in range(0, n, BATCH):
                s.execute(insert(table), rows[k : k + BATCH])
        for t in ("person", "premise", "account", "service_point", "meter", "channel"):
            s.execute(text(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), {n})"))
        start = local_midnight(DAY, TZ)
        days = sorted({start.date(), (start + timedelta(hours=23)).date()})
        flags = encode_flags(np.zeros(48, dtype=np.uint16))
        now = datetime.now(UTC)
        for k in range(0, n, BATCH):
            vals = rng.gamma(2.0, 0.05, size=(min(BATCH, n - k), len(days), 48)).round(3)
            rows = [
                {
                    "channel_id": k + j + 1,
                    "day": d,
                    "version": 1,
                    "interval_s": 1800,
                    "raw_values": (b := encode_values(vals[j, di])),
                    "values": b,
                    "flags": flags,
                    "received": 48,
                    "vee_status": "valid",
                    "updated_at": now,
                }
                for j in range(vals.shape[0])
                for di, d in enumerate(days)
            ]
            s.execute(insert(ChannelDay), rows)
        ensure_wallets(s, DAY)
        for k in range(0, n, BATCH):  # one batch entry per BATCH recharges: Dr 1000, Cr 2100 per account
            m = min(BATCH, n - k)
            legs = [(CASH, Decimal(200 * m), None)] + [(WALLET, Decimal(-200), k + j + 1) for j in range(m)]
            post_many(s, [EntrySpec("recharge.cash", DAY, f"R{k}", "recharges", legs, "INR")])
        s.execute(
            text("UPDATE wallet SET last_recharge = 2000000, last_charged_on = :d"),
            {"d": DAY - timedelta(days=1)},
        )
        s.commit()
        s.execute(text("ANALYZE"))
    engine.dispose()
    return list(range(1, n + 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="10,000 wallets")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n = 10_000 if args.quick else args.n
    console = Console()
    name = f"m2c_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade(url)
        t0 = time.perf_counter()
        channels = setup(url, n)
        console.print(
            f"setup: {n:,} prepaid wallets with one day of 30-minute data in {time.perf_counter() - t0:.1f} s"
        )
        engine = make_engine(url)
        sessions = session_factory(engine)
        runs, reads, floats, outcome = [], [], [], {}
        start, end = local_midnight(DAY, TZ), local_midnight(DAY + timedelta(days=1), TZ)
        for _ in range(args.repeats):
            with sessions() as s:
                t = time.perf_counter()
                result = run_daily(s, DAY, tz=TZ, currency="INR")
                runs.append(time.perf_counter() - t)
                outcome = {**result.to_dict(), "trial_balance": str(trial_balance(s).total)}
                s.rollback()
            with sessions() as s:
                t = time.perf_counter()
                window = MeasurementStore(s).read_window(channels, start, end, 1800)
                reads.append(time.perf_counter() - t)
            t = time.perf_counter()
            kwh = np.nansum(window.values, axis=1)
            _charge = (kwh * 3.10 + 30.0 / 31) * 1.05  # float, no slabs, no rounding, no ledger
            floats.append(time.perf_counter() - t)
        engine.dispose()
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    med = statistics.median
    table = Table(title=f"Daily prepaid run, {n:,} wallets, PostgreSQL (median of {args.repeats})")
    table.add_column("what")
    table.add_column("seconds", justify="right")
    table.add_column("wallets/s", justify="right")
    for label, ts in (
        ("run_daily: read + rate exactly + post + alerts", runs),
        ("baseline: read_window of the same data only", reads),
        ("baseline: float NumPy charge over it", floats),
    ):
        table.add_row(label, f"{med(ts):.2f}", f"{n / med(ts):,.0f}")
    console.print(table)
    console.print(outcome)
    target = 30.0
    console.print(
        f"[{'green' if med(runs) < target else 'red'}]daily run {med(runs):.1f} s "
        f"({'under' if med(runs) < target else 'over'} the {target:.0f} s target)[/]"
    )


if __name__ == "__main__":
    main()
