"""The daily prepaid run on PostgreSQL: N wallets (default 100,000) charged for one day.

Creates its own database ``m2c_bench_<random>`` on 127.0.0.1:5432 (override the server with
``M2C_BENCH_PG``), loads the residential prepaid tariff, N prepaid agreements with a meter and a
30-minute kWh channel each, one local day of interval data (two UTC channel-days per channel) and a
recharge per wallet; then times :func:`run_daily` (read, rate, post, alerts) in a transaction that is
rolled back after each repeat, against baselines measured in the same run: reading the same interval
data alone (``read_window``) and a plain float NumPy charge over it. Drops the database at the end.

``--month`` instead simulates October 2026 for 10,000 consumers: daily runs, alerts, recharges,
disconnects and reconnects executed by a simulated head-end, and checks that the ledger reconciles
(trial balance zero; every wallet = its recharges − its daily charges).

Run: ``python benchmarks/bench_prepaid.py [--quick] [--n N] [--repeats R] [--month]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, func, insert, select, text

from meter2cash.cis.ledger.journal import CASH, WALLET, EntrySpec, ensure_chart, post_many, trial_balance
from meter2cash.cis.parties.models import Account, Person, Premise, ServiceAgreement, ServicePoint
from meter2cash.cis.payments.models import Payment
from meter2cash.cis.prepaid.daily_charge import run_daily
from meter2cash.cis.prepaid.models import PrepaidCharge, Wallet
from meter2cash.cis.prepaid.wallet import (
    ensure_wallets,
    recharge_account,
    reconnect_report,
    report_command,
    wallet_balances,
)
from meter2cash.cis.tariffs.loader import load_tariff_file, store_tariff
from meter2cash.core.timeutil import local_midnight
from meter2cash.db import make_engine, session_factory, upgrade
from meter2cash.db_query import raw
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.models import Channel, ChannelDay, Installation, Meter
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore, encode_flags, encode_values
from meter2cash.mdm.usage.local import LocalUsage

ADMIN = os.environ.get("M2C_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TARIFF = Path(__file__).resolve().parents[1] / "examples" / "tariffs" / "res-pp.toml"
TZ = "Asia/Kolkata"
DAY = date(2026, 10, 7)
BATCH = 20_000


def setup(
    url: str, n: int, *, first: date = DAY, n_days: int = 1, interval_s: int = 1800, recharge: int = 200
) -> list[int]:
    """Master data, tariff, ``n_days`` local days of data from ``first`` and a recharge per wallet;
    wallets count as charged up to the day before ``first``. Returns the channel ids."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    rng = np.random.default_rng(7)
    with sessions() as s:
        store_tariff(s, load_tariff_file(TARIFF), TARIFF.read_text())
        rt = ensure_catalogue(s)[{1800: "kwh_import_30m", 3600: "kwh_import_60m"}[interval_s]].id
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
        start = local_midnight(first, TZ)
        spd = 86400 // interval_s
        days = sorted({(start + timedelta(hours=h)).date() for h in range(0, 24 * n_days, 1)})
        flags = encode_flags(np.zeros(spd, dtype=np.uint16))
        now = datetime.now(UTC)
        for k in range(0, n, BATCH):
            vals = rng.gamma(2.0, 0.05 * interval_s / 1800, size=(min(BATCH, n - k), len(days), spd)).round(3)
            rows = [
                {
                    "channel_id": k + j + 1,
                    "day": d,
                    "version": 1,
                    "interval_s": interval_s,
                    "raw_values": (b := encode_values(vals[j, di])),
                    "values": b,
                    "flags": flags,
                    "received": spd,
                    "vee_status": "valid",
                    "updated_at": now,
                }
                for j in range(vals.shape[0])
                for di, d in enumerate(days)
            ]
            s.execute(insert(ChannelDay), rows)
        ensure_wallets(s, first)
        for k in range(0, n, BATCH):  # one batch entry per BATCH recharges: Dr 1000, Cr 2100 per account
            m = min(BATCH, n - k)
            legs = [(CASH, Decimal(recharge * m), None)] + [
                (WALLET, Decimal(-recharge), k + j + 1) for j in range(m)
            ]
            post_many(s, [EntrySpec("recharge.cash", first, f"R{k}", "recharges", legs, "INR")])
        s.execute(
            text("UPDATE wallet SET last_recharge = :r, last_charged_on = :d"),
            {"r": recharge * 10_000, "d": first - timedelta(days=1)},
        )
        s.commit()
        s.execute(text("ANALYZE"))
    engine.dispose()
    return list(range(1, n + 1))


def simulate_month(url: str, n: int, console: Console) -> None:
    """October 2026 for ``n`` prepaid consumers: daily runs at 12:00 local, customers recharging
    when low or cut off, the head-end executing commands; reports and reconciles the ledger."""
    first = date(2026, 10, 1)
    t0 = time.perf_counter()
    setup(url, n, first=first, n_days=31, interval_s=3600, recharge=300)
    console.print(f"setup: {n:,} wallets with 31 days of hourly data in {time.perf_counter() - t0:.1f} s")
    engine = make_engine(url)
    sessions = session_factory(engine)
    rng = np.random.default_rng(11)
    totals: dict[str, int] = defaultdict(int)
    run_times = []
    for d in range(31):
        day = first + timedelta(days=d)
        noon = local_midnight(day, TZ) + timedelta(hours=12)
        with sessions() as s:
            t = time.perf_counter()
            res = run_daily(s, day, tz=TZ, currency="INR", at=noon, usage=LocalUsage)
            run_times.append(time.perf_counter() - t)
            for k, v in res.evaluation.items():
                totals[k] += v
            balances = wallet_balances(s)
            wallets = s.execute(select(Wallet.account_id, Wallet.last_recharge, Wallet.supply)).all()
            for acct, last, supply in wallets:
                low = balances.get(acct, 0) < int(last.scaleb(4)) // 5
                if (supply != "connected" and rng.random() < 0.7) or (low and rng.random() < 0.3):
                    amount = Decimal(int(rng.choice([100, 200, 500])))
                    recharge_account(
                        s,
                        acct,
                        amount,
                        channel="online",
                        currency="INR",
                        received_on=day,
                        tz=TZ,
                        at=noon + timedelta(hours=3),
                    )
                    totals["recharges"] += 1
            pending = select(MeterCommand).where(MeterCommand.status == "requested")
            for cmd in s.scalars(pending.order_by(MeterCommand.id)).all():
                sent = max(noon, cmd.requested_at) + timedelta(minutes=1)
                report_command(s, cmd.id, "sent", at=sent)
                relay = {"relay": "connected" if cmd.kind == "connect" else "disconnected"}
                done = sent + timedelta(minutes=int(rng.integers(5, 150)))
                report_command(s, cmd.id, "executed", at=done, result=relay)
            s.commit()
    with sessions() as s:
        tb = trial_balance(s).total
        balances = wallet_balances(s)
        paid = dict(
            s.execute(
                select(Payment.account_id, func.sum(raw(Payment.amount))).group_by(Payment.account_id)
            ).all()
        )
        charged = dict(
            s.execute(
                select(PrepaidCharge.account_id, func.sum(raw(PrepaidCharge.amount))).group_by(
                    PrepaidCharge.account_id
                )
            ).all()
        )
        setup_credit = 300 * 10_000
        mismatched = sum(
            1
            for a in range(1, n + 1)
            if balances.get(a, 0) != setup_credit + int(paid.get(a, 0)) - int(charged.get(a, 0))
        )
        negative = sum(1 for v in balances.values() if v < 0)
        reconnects = reconnect_report(s)
        reconnect_requests = s.scalar(select(func.count()).where(MeterCommand.kind == "connect"))
        supply = dict(s.execute(select(Wallet.supply, func.count()).group_by(Wallet.supply)).all())
    engine.dispose()
    table = Table(title=f"Simulated month, {n:,} prepaid consumers (October 2026, {TZ})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, value in (
        ("daily run, median [s]", f"{statistics.median(run_times):.2f}"),
        ("alerts fired", totals["alerts"]),
        ("disconnect requests", totals["disconnect_requests"]),
        ("disconnects deferred (quiet hours, Sundays, holidays)", totals["disconnects_deferred"]),
        ("reconnect requests (at once after a recharge)", reconnect_requests),
        ("recharges", totals["recharges"]),
        ("reconnects executed / within 2 h", f"{reconnects['executed']} / {reconnects['within_target']}"),
        ("wallets below zero at month end", negative),
        ("supply at month end", ", ".join(f"{k} {v}" for k, v in sorted(supply.items()))),
        ("trial balance", str(tb)),
        ("wallets not equal to recharges − charges", mismatched),
    ):
        table.add_row(label, str(value))
    console.print(table)
    if tb != 0 or mismatched:
        raise SystemExit("the ledger does not reconcile")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="10,000 wallets")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--month", action="store_true", help="simulate October 2026 for --n consumers (default 10,000)"
    )
    args = ap.parse_args()
    n = 10_000 if args.quick or (args.month and args.n == 100_000) else args.n
    console = Console()
    name = f"m2c_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade(url)
        if args.month:
            simulate_month(url, n, console)
            return
        t0 = time.perf_counter()
        channels = setup(url, n)
        console.print(
            f"setup: {n:,} prepaid wallets with one day of 30-minute data in {time.perf_counter() - t0:.1f} s"
        )
        engine = make_engine(url)
        with engine.connect() as c:  # statistics, as autovacuum gathers them after a bulk load
            c.execute(text("ANALYZE"))
            c.commit()
        sessions = session_factory(engine)
        runs, reads, floats, outcome = [], [], [], {}
        start, end = local_midnight(DAY, TZ), local_midnight(DAY + timedelta(days=1), TZ)
        for _ in range(args.repeats):
            with sessions() as s:
                t = time.perf_counter()
                result = run_daily(s, DAY, tz=TZ, currency="INR", usage=LocalUsage)
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
