"""Bill run with load changes and meter exchanges: what split bills and combined meters cost.

Loads the fleet of ``bench_billrun.py`` (N COM-TOU agreements, a month of 15-minute data) on its
own PostgreSQL database (``--sqlite``: a temporary SQLite file), times ``run_bills`` as loaded,
then gives a share of the agreements a load change on 11 October (two segments each) and another
share a meter exchange at 11:00 on 14 October (a second meter with its own channel and data;
both meters read inside their installation windows), and times the run again. Prints bills/s of
both runs (median of several; bills deleted between runs) and checks energy in = energy billed
for the exchanged agreements. Run: ``python benchmarks/bench_billsplits.py [--n N] [--share 0.1]
[--sqlite]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import sessionmaker

from bench_billrun import PERIOD, TZ, bench_database, clear_bills, load_fleet
from meter2cash.cis.billing.models import Bill
from meter2cash.cis.billing.run import run_bills
from meter2cash.cis.parties.models import ContractTerm, ServiceAgreement
from meter2cash.db import make_engine
from meter2cash.mdm.models import Channel, ChannelDay, Installation, Meter
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.usage.local import LocalUsage

EXCHANGE = datetime(2026, 10, 14, 11, 0, tzinfo=ZoneInfo(TZ)).astimezone(UTC)


def add_changes(session, n: int, share: float) -> tuple[list[int], list[int]]:
    """Load changes on 11 October for the first ``share`` of agreements, meter exchanges for the
    next ``share``; returns the agreement ids of each."""
    k = max(1, int(n * share))
    changed, exchanged = list(range(1, k + 1)), list(range(k + 1, 2 * k + 1))
    session.execute(
        insert(ContractTerm),
        [
            {"service_agreement_id": i, "effective_from": d, "sanctioned_load_kw": kw, "reason": "bench",
             "created_by": "bench"}
            for i in changed
            for d, kw in ((date(2025, 1, 1), Decimal(20)), (date(2026, 10, 11), Decimal(35)))
        ],
    )  # fmt: skip
    session.execute(
        update(ServiceAgreement)
        .where(ServiceAgreement.id.in_(changed))
        .values(sanctioned_load_kw=Decimal(35))
    )
    rt = ensure_catalogue(session)["kwh_import_15m"]
    base = n + 1000
    session.execute(
        update(Installation).where(Installation.meter_id.in_(exchanged)).values(removed_at=EXCHANGE)
    )
    session.execute(
        insert(Meter), [{"id": base + i, "serial": f"X-{i}", "status": "installed"} for i in exchanged]
    )
    session.execute(
        insert(Channel), [{"id": base + i, "meter_id": base + i, "reading_type_id": rt.id} for i in exchanged]
    )
    session.execute(
        insert(Installation),
        [{"meter_id": base + i, "service_point_id": i, "installed_at": EXCHANGE} for i in exchanged],
    )
    rng = np.random.default_rng(5)
    flags = np.zeros(96, dtype=np.uint16).tobytes()
    batch = []
    for i in exchanged:
        for d in range(20):  # UTC days 13 October .. 1 November
            v = rng.gamma(2.0, 0.4, 96).round(3).tobytes()
            day = date(2026, 10, 13) + timedelta(days=d)
            row = {"channel_id": base + i, "day": day, "version": 1, "interval_s": 900, "raw_values": v}
            batch.append({**row, "values": v, "flags": flags, "received": 96, "vee_status": "validated"})
    for lo in range(0, len(batch), 2000):
        session.execute(insert(ChannelDay), batch[lo : lo + 2000])
    session.commit()
    return changed, exchanged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--share", type=float, default=0.1, help="share with a load change, and with an exchange")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sqlite", action="store_true")
    args = ap.parse_args()
    console = Console()
    rows = []
    with bench_database(args.sqlite) as url:
        engine = make_engine(url)
        sessions = sessionmaker(engine, expire_on_commit=False)
        with sessions() as s:
            load_fleet(s, args.n)

        def timed() -> tuple[float, int]:
            walls, bills = [], 0
            for _ in range(args.repeats):
                with sessions() as s:
                    clear_bills(s)
                with sessions() as s:
                    t0 = time.perf_counter()
                    result = run_bills(s, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
                    s.commit()
                    walls.append(time.perf_counter() - t0)
                    assert not result.errors, result.errors[:3]
                    bills = len(result.bills)
            return statistics.median(walls), bills

        with engine.connect() as c:
            c.execute(text("ANALYZE"))
            c.commit()
        wall, bills = timed()
        rows.append(("as loaded: one segment, one meter each", wall, bills))
        with sessions() as s:
            changed, exchanged = add_changes(s, args.n, args.share)
        with engine.connect() as c:
            c.execute(text("ANALYZE"))
            c.commit()
        wall, bills = timed()
        label = f"{len(changed):,} load changes (2 segments) + {len(exchanged):,} meter exchanges"
        rows.append((label, wall, bills))
        with sessions() as s:
            billed = s.scalar(
                select(func.sum(Bill.total_kwh)).where(Bill.service_agreement_id.in_(exchanged))
            )
        energy_in = billed_energy_in(sessions, exchanged, args.n + 1000)
        engine.dispose()
    db = "SQLite" if args.sqlite else "PostgreSQL"
    table = Table(
        title=f"Bill run with split bills, {args.n:,} COM-TOU agreements, {db} (median of {args.repeats})"
    )
    for col in ("run", "bills", "seconds", "bills/s"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for label, wall, bills in rows:
        table.add_row(label, f"{bills:,}", f"{wall:.2f}", f"{bills / wall:,.0f}")
    console.print(table)
    console.print(f"exchanged agreements: energy in {energy_in} kWh, billed {billed} kWh")


def billed_energy_in(sessions, exchanged: list[int], base: int) -> Decimal:
    """Both meters' stored intervals of the exchanged agreements inside their installation windows."""
    from meter2cash.core.timeutil import local_month_bounds
    from meter2cash.mdm.store import MeasurementStore

    start, end = local_month_bounds(PERIOD, TZ)
    with sessions() as s:
        store = MeasurementStore(s)
        old = store.read_window(exchanged, start, EXCHANGE, 900, include_raw=False)
        new = store.read_window([base + i for i in exchanged], EXCHANGE, end, 900, include_raw=False)
    per_sa = np.nansum(old.values, axis=1) + np.nansum(new.values, axis=1)
    return sum((Decimal(str(round(float(v), 3))) for v in per_sa), Decimal("0.000"))


if __name__ == "__main__":
    main()
