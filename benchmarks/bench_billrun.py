"""Persisted bill run: interval data → determinants → bills, lines, ledger postings, outbox events.

Creates its own PostgreSQL database ``m2c_bench_<random>`` on 127.0.0.1:5432 (dropped at the
end; ``--sqlite`` uses a temporary SQLite file instead), loads N agreements of the commercial TOU
+ slab + demand tariff with a month of 15-minute data, analyses the tables (as autovacuum would
after a bulk load; without statistics PostgreSQL scans the whole table), and times ``run_bills``
(the run of median wall time of several, after an untimed warm-up run that loads the compiled
kernels; the bills are deleted between runs). Baseline in the
same run: reading the same interval data with ``MeasurementStore.read_window`` alone. Besides wall
time it prints this process's CPU time and the PostgreSQL server process's. Run: ``python
benchmarks/bench_billrun.py [--quick] [--n N] [--sqlite]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, delete, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from meter2cash.cis.billing.models import Bill, BillLine, BillRun, BillSegment
from meter2cash.cis.billing.run import run_bills
from meter2cash.cis.ledger.journal import trial_balance
from meter2cash.cis.ledger.models import JournalEntry, JournalLine
from meter2cash.cis.parties.models import Account, Person, Premise, ServiceAgreement, ServicePoint
from meter2cash.cis.tariffs.loader import load_tariff_file, store_tariff
from meter2cash.core.timeutil import local_month_bounds
from meter2cash.db import make_engine, upgrade
from meter2cash.events.models import OutboxMessage
from meter2cash.mdm.models import Channel, ChannelDay, Installation, Meter
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.usage.local import LocalUsage

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TZ, PERIOD = "Asia/Kolkata", "2026-10"


def load_fleet(session: Session, n: int) -> list[int]:
    """n commercial TOU agreements, meters, channels and 15-minute data covering October."""
    path = ROOT / "examples" / "tariffs" / "com-tou.toml"
    store_tariff(session, load_tariff_file(path), path.read_text())
    rt = ensure_catalogue(session)["kwh_import_15m"]
    rows = range(n)
    session.execute(insert(Person), [{"id": i + 1, "name": f"Customer {i}"} for i in rows])
    session.execute(
        insert(Premise), [{"id": i + 1, "code": f"P-{i}", "address": f"{i} Main Rd"} for i in rows]
    )
    session.execute(
        insert(Account),
        [
            {"id": i + 1, "number": f"A-{i:07d}", "person_id": i + 1, "customer_class": "commercial"}
            for i in rows
        ],
    )
    session.execute(
        insert(ServicePoint), [{"id": i + 1, "code": f"SP-{i}", "premise_id": i + 1} for i in rows]
    )
    session.execute(
        insert(ServiceAgreement),
        [
            {"id": i + 1, "number": f"SA-{i:07d}", "account_id": i + 1, "service_point_id": i + 1,
             "tariff_code": "COM-TOU", "payment_mode": "postpaid", "sanctioned_load_kw": Decimal(20),
             "start_date": date(2025, 1, 1)}
            for i in rows
        ],
    )  # fmt: skip
    session.execute(insert(Meter), [{"id": i + 1, "serial": f"M-{i}", "status": "installed"} for i in rows])
    session.execute(
        insert(Channel), [{"id": i + 1, "meter_id": i + 1, "reading_type_id": rt.id} for i in rows]
    )
    session.execute(
        insert(Installation),
        [
            {"meter_id": i + 1, "service_point_id": i + 1, "installed_at": datetime(2025, 1, 1, tzinfo=UTC)}
            for i in rows
        ],
    )
    rng = np.random.default_rng(3)
    flags = np.zeros(96, dtype=np.uint16).tobytes()  # every interval valid
    days = [date(2026, 9, 30) + timedelta(days=d) for d in range(33)]
    for lo in range(0, n, 200):
        batch = []
        for i in range(lo, min(n, lo + 200)):
            for d in days:
                v = (rng.gamma(2.0, 0.4, 96)).round(3).tobytes()
                row = {"channel_id": i + 1, "day": d, "version": 1, "interval_s": 900, "raw_values": v}
                batch.append({**row, "values": v, "flags": flags, "received": 96, "vee_status": "validated"})
        session.execute(insert(ChannelDay), batch)
    session.commit()
    return [i + 1 for i in rows]


@dataclass(slots=True)
class Timing:
    """Wall time, this process's CPU time and the CPU time of the database server processes
    serving the benchmark's database [s] (read from /proc on the machine running PostgreSQL
    locally, so a second connection a run opens counts too; ``None`` where not available)."""

    wall: float
    cpu: float
    db_cpu: float | None
    _session: Session | None = None

    @classmethod
    def start(cls, session: Session) -> Timing:
        pg = session.get_bind().dialect.name == "postgresql"
        return cls(
            time.perf_counter(),
            time.process_time(),
            _db_cpu(session) if pg else None,
            session if pg else None,
        )

    def stop(self) -> Timing:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        db = None if self._session is None else _db_cpu(self._session)
        return Timing(wall, cpu, None if db is None or self.db_cpu is None else db - self.db_cpu)

    @staticmethod
    def median(ts: list[Timing]) -> Timing:
        """The run of median wall time."""
        return sorted(ts, key=lambda t: t.wall)[len(ts) // 2]


#: CPU seconds of every server process seen so far, so a connection that ended still counts.
_SEEN: dict[int, float] = {}


def _db_cpu(session: Session) -> float | None:
    """Total CPU seconds of the server processes of this session's database (those alive now
    and those seen before)."""
    pids = (
        session.connection()
        .exec_driver_sql("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        .scalars()
    )
    for pid in pids:
        cpu = _proc_cpu(pid)
        if cpu is not None:
            _SEEN[pid] = cpu
    return sum(_SEEN.values()) if _SEEN else None


def _proc_cpu(pid: int | None) -> float | None:
    """User + system CPU seconds of a local process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def bench_database(sqlite: bool) -> Iterator[str]:
    """The URL of a new, migrated database: PostgreSQL ``m2c_bench_<random>`` on 127.0.0.1:5432,
    dropped afterwards, or with ``sqlite`` a temporary SQLite file."""
    with tempfile.TemporaryDirectory() as tmp:
        if sqlite:
            url = f"sqlite:///{tmp}/bench.db"
            upgrade(url)
            yield url
            return
        name = f"m2c_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
            upgrade(url)
            yield url
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def clear_bills(session: Session) -> None:
    for model in (BillLine, BillSegment, Bill, JournalLine, JournalEntry, OutboxMessage, BillRun):
        session.execute(delete(model))
    session.commit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--quick", action="store_true", help="400 agreements, 2 repeats")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sqlite", action="store_true", help="a temporary SQLite file instead of PostgreSQL")
    args = ap.parse_args()
    n, repeats = (400, 2) if args.quick else (args.n, args.repeats)
    console = Console(width=max(Console().width, 130))
    with bench_database(args.sqlite) as url:
        engine = make_engine(url)  # the platform's engine, with its PostgreSQL settings
        sessions = sessionmaker(engine, expire_on_commit=False)
        t0 = time.perf_counter()
        with sessions() as s:
            ids = load_fleet(s, n)
        with engine.connect() as c:  # statistics, as autovacuum gathers them after a bulk load
            c.execute(text("ANALYZE"))
            c.commit()
        setup = time.perf_counter() - t0
        start, end = local_month_bounds(PERIOD, TZ)

        def read_only() -> Timing:
            with sessions() as s:
                t = Timing.start(s)
                store = MeasurementStore(s)
                for lo in range(0, len(ids), 1000):
                    store.read_window(ids[lo : lo + 1000], start, end, 900)
                return t.stop()

        def bill_run() -> Timing:
            with sessions() as s:
                clear_bills(s)
            with sessions() as s:
                t = Timing.start(s)
                result = run_bills(s, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
                s.commit()
                elapsed = t.stop()
                assert len(result.bills) == n, result.errors[:3]
                assert trial_balance(s).total == 0
                assert s.scalar(select(Bill.total).limit(1)) is not None
                return elapsed

        bill_run()  # warm-up, not timed: loads the compiled kernels (Numba's cache) once per process
        bases = [read_only() for _ in range(repeats)]
        runs = [bill_run() for _ in range(repeats)]
        engine.dispose()
    db = "SQLite" if args.sqlite else "PostgreSQL"
    table = Table(title=f"Bill run, {n:,} COM-TOU agreements, 15-min data, {db} (median of {repeats})")
    for col in ("step", "seconds", "bills/s", "bills/s of every run", "Python CPU s", "database CPU s"):
        table.add_column(col, justify="left" if col == "step" else "right")
    base, run = Timing.median(bases), Timing.median(runs)
    spread = {id(base): _spread(n, bases), id(run): _spread(n, runs)}
    for label, t in (
        ("baseline: read the month's interval data only (read_window)", base),
        ("run_bills: read, determinants, rate, bills + lines + ledger + outbox", run),
    ):
        db_cpu = "n/a" if t.db_cpu is None else f"{t.db_cpu:.2f}"
        table.add_row(label, f"{t.wall:.2f}", f"{n / t.wall:,.0f}", spread[id(t)], f"{t.cpu:.2f}", db_cpu)
    console.print(table)
    console.print(
        f"setup (not timed): {setup:.1f} s; target ≥ 2,000 bills/s on PostgreSQL; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work on the machine slows the figures)"
    )


def _spread(n: int, ts: list[Timing]) -> str:
    """Lowest–highest rate of the runs."""
    rates = sorted(n / t.wall for t in ts)
    return f"{rates[0]:,.0f}–{rates[-1]:,.0f}"


if __name__ == "__main__":
    main()
