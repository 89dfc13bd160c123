"""Meter commands on PostgreSQL: issued, sent and confirmed per second through the command store.

Creates its own database ``m2c_bench_<random>`` on 127.0.0.1:5432 (``M2C_BENCH_PG`` overrides the
server) with N meters (default 20,000), then, each repeat in a transaction rolled back afterwards:
issues a group disconnect to every meter (one parent, N children, N audit steps), sends them as
the dispatcher does (``due_commands`` + ``mark_sent`` in rounds of 500), and applies the head-end's
reports (``acknowledged``, then ``executed`` with the relay read back) — the whole lifecycle a
disconnect goes through. Baseline in the same run: a plain bulk INSERT of the same N command rows
(no lifecycle, no trail). Prints medians. Drops the database at the end.

Run: ``python benchmarks/bench_commands.py [--quick] [--n N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, insert, text

from meter2cash.db import make_engine, session_factory, upgrade
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.commands.service import Report, apply_reports, due_commands, issue_group, mark_sent_many
from meter2cash.mdm.models import Meter

ADMIN = os.environ.get("M2C_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2,000 meters, 2 repeats")
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n, repeats = (2_000, 2) if args.quick else (args.n, args.repeats)
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
            s.execute(
                insert(Meter),
                [{"serial": f"BM{i:07d}", "status": "installed", "created_at": T0} for i in range(n)],
            )
            s.commit()
            meter_ids = [r[0] for r in s.execute(text("SELECT id FROM meter ORDER BY id"))]
            s.execute(text("ANALYZE"))
        raw_s, issue_s, send_s, report_s = [], [], [], []
        for _ in range(repeats):
            with sessions() as s:
                t = time.perf_counter()
                s.execute(
                    insert(MeterCommand),
                    [
                        {"kind": "disconnect", "meter_id": m, "is_group": False, "params": {},
                         "reason": "bench", "requested_by": "bench", "status": "requested", "attempts": 0,
                         "requested_at": T0, "detail": "", "result": {}}
                        for m in meter_ids
                    ],
                )  # fmt: skip
                raw_s.append(time.perf_counter() - t)
                s.rollback()
            with sessions() as s:
                t = time.perf_counter()
                parent = issue_group(
                    s, kind="disconnect", meter_ids=meter_ids, reason="bench", requested_by="bench", at=T0
                )
                issue_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                sent: list[int] = []
                now = T0 + timedelta(seconds=1)
                while True:
                    due = due_commands(s, now, limit=500)
                    if not due:
                        break
                    mark_sent_many(s, [(c.id, f"cmd-{c.id}-1") for c in due], at=now)
                    sent.extend(c.id for c in due)
                send_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                # the head-end reports in batches, as its messages carry them
                for lo in range(0, len(sent), 500):
                    chunk = sent[lo : lo + 500]
                    apply_reports(s, [Report(c, "acknowledged", now + timedelta(seconds=5)) for c in chunk])
                    done = now + timedelta(seconds=60)
                    apply_reports(
                        s, [Report(c, "executed", done, result={"relay": "disconnected"}) for c in chunk]
                    )
                report_s.append(time.perf_counter() - t)
                assert parent.status == "success", parent.status
                s.rollback()
        engine.dispose()
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    med = statistics.median
    total = med(issue_s) + med(send_s) + med(report_s)
    table = Table(title=f"Meter commands on PostgreSQL, {n:,} meters (medians of {repeats})")
    for col in ("stage", "seconds", "commands/s"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for label, secs in (
        ("baseline: bulk INSERT of the rows", med(raw_s)),
        ("issue (group, trail)", med(issue_s)),
        ("send (due_commands + mark_sent_many, rounds of 500)", med(send_s)),
        ("reports in batches of 500 (ack, executed + relay)", med(report_s)),
        ("issued, sent and confirmed", total),
    ):
        table.add_row(label, f"{secs:.2f}", f"{n / secs:,.0f}")
    console.print(table)
    console.print(f"issue is {med(issue_s) / med(raw_s):.1f}× the bare INSERT")


if __name__ == "__main__":
    main()
