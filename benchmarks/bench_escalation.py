"""SLA escalation of service orders on PostgreSQL: one pass over N open orders past their SLA.

Creates its own database ``m2c_bench_<random>`` on 127.0.0.1:5432 (``M2C_BENCH_PG`` overrides the
server) with N open new-connection orders (default 1,000,000), every one past its state's SLA by
more than a day, so that a pass raises each to both levels of the shipped workflow's escalation.
Then, each repeat in a transaction rolled back afterwards: one ``escalate`` pass (2 × N
escalation rows). Baseline in the same run: a plain ``INSERT … SELECT`` of N rows from the same
table into a table of the same shape and indexes (no workflow, no check for an earlier
escalation, no foreign key). Prints medians. Drops the database at the end.

Run: ``python benchmarks/bench_escalation.py [--quick] [--n N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import create_engine, text

from meter2cash.cis.orders.escalation import escalate
from meter2cash.cis.orders.service import open_order
from meter2cash.db import make_engine, session_factory, upgrade

ADMIN = os.environ.get("M2C_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CHUNK = 100_000
COPIED = (
    "type, workflow_version, state, team, area, data, created_at, created_by, due_at, state_entered_at,"
    " state_due_at"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 orders, 2 repeats")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n, repeats = (20_000, 2) if args.quick else (args.n, args.repeats)
    name = f"m2c_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
    console = Console()
    try:
        upgrade(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        with sessions() as s:
            first = open_order(s, type="new_connection", by="bench", role="customer_service", at=T0)
            s.commit()
            with Progress(console=console, transient=True) as bar:  # copies of the first order, in SQL
                task = bar.add_task("orders", total=n)
                for lo in range(1, n, CHUNK):
                    hi = min(n, lo + CHUNK)
                    s.execute(
                        text(
                            f"INSERT INTO service_order (number, {COPIED})"
                            f" SELECT 'NC-B-' || g, {COPIED}"
                            " FROM service_order, generate_series(:lo, :hi - 1) AS g WHERE id = :id"
                        ),
                        {"lo": lo, "hi": hi, "id": first.id},
                    )
                    s.commit()
                    bar.update(task, completed=hi)
            s.execute(text("CREATE TABLE bench_copy (LIKE service_order_escalation INCLUDING ALL)"))
            s.commit()
            s.execute(text("ANALYZE"))
            s.commit()
        now = T0 + timedelta(days=3)  # 24 h SLA + 24 h to the second level, and more
        raw_s, pass_s = [], []
        for _ in range(repeats):
            with sessions() as s:
                t = time.perf_counter()
                s.execute(
                    text(
                        'INSERT INTO bench_copy (id, order_id, entered_at, state, level, "to", at)'
                        " SELECT id, id, state_entered_at, state, 1, 'supervisor', :now FROM service_order"
                    ),
                    {"now": now},
                )
                raw_s.append(time.perf_counter() - t)
                s.rollback()
            with sessions() as s:
                t = time.perf_counter()
                done = escalate(s, now)
                pass_s.append(time.perf_counter() - t)
                assert done["raised"] == {"new_connection:1": n, "new_connection:2": n}, done
                s.rollback()
        engine.dispose()
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    med = statistics.median
    title = f"SLA escalation on PostgreSQL, {n:,} open orders past their SLA (medians of {repeats})"
    table = Table(title=title)
    for col in ("stage", "seconds", "orders/s"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for label, secs in (
        ("baseline: INSERT … SELECT of N rows", med(raw_s)),
        ("one escalation pass (2 levels: 2 × N rows)", med(pass_s)),
    ):
        table.add_row(label, f"{secs:.2f}", f"{n / secs:,.0f}")
    console.print(table)
    console.print(f"a pass is {med(pass_s) / med(raw_s):.1f}× the bare INSERT … SELECT of one level")


if __name__ == "__main__":
    main()
