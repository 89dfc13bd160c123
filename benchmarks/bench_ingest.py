"""Ingest throughput: a CSV of N meters × D days of 15-minute reads into SQLite (and PostgreSQL).

Run: ``python benchmarks/bench_ingest.py`` (1,000 meters × 7 days = 672,000 rows) or ``--quick``.
Baseline in the same run: plain ``pandas.read_csv`` of the same file. Each figure is the median of
``--repeat`` runs, each on a fresh database.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, insert, select, text

from meter2cash.db import make_engine, session_factory, transaction, upgrade
from meter2cash.mdm.ingest import ingest_bytes
from meter2cash.mdm.models import Channel, Meter
from meter2cash.mdm.reading_types import ensure_catalogue

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
START = datetime(2026, 10, 1, tzinfo=UTC)


def make_csv(meters: int, days: int, path: Path) -> int:
    """Write the reading file; returns the number of data rows."""
    slots = days * 96
    stamps = pd.date_range(START, periods=slots, freq="15min").strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy()
    rng = np.random.default_rng(7)
    serial = np.repeat(np.array([f"BM{i:06d}" for i in range(meters)], dtype=object), slots)
    frame = pd.DataFrame(
        {
            "meter": serial,
            "channel": "kwh_import_15m",
            "start": np.tile(stamps, meters),
            "value": np.round(rng.gamma(2.0, 0.1, meters * slots), 3),
        }
    )
    frame.to_csv(path, index=False)
    return len(frame)


def prepare(url: str, meters: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    with transaction(session_factory(engine)) as s:
        rt = ensure_catalogue(s)["kwh_import_15m"].id
        s.execute(insert(Meter), [{"serial": f"BM{i:06d}", "status": "installed"} for i in range(meters)])
        ids = s.scalars(select(Meter.id)).all()
        channels = [{"meter_id": m, "reading_type_id": rt, "multiplier": Decimal(1)} for m in ids]
        s.execute(insert(Channel), channels)
    engine.dispose()


def timed_ingest(url: str, data: bytes) -> float:
    engine = make_engine(url)
    t = time.perf_counter()
    with transaction(session_factory(engine)) as s:
        r = ingest_bytes(s, data, filename="bench.csv", received_at=datetime(2026, 12, 1, tzinfo=UTC))
    elapsed = time.perf_counter() - t
    engine.dispose()
    assert r.rows_rejected == 0 and r.intervals_new == r.rows_total, r.problems[:3]
    return elapsed


def sqlite_run(tmp: Path, meters: int, data: bytes, i: int) -> float:
    url = f"sqlite:///{tmp / f'bench{i}.db'}"
    prepare(url, meters)
    return timed_ingest(url, data)


def pg_run(meters: int, data: bytes, _i: int) -> float:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"m2c_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
        prepare(url, meters)
        return timed_ingest(url, data)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pg_reachable() -> bool:
    try:
        engine = create_engine(PG_ADMIN)
        with engine.connect() as c:
            c.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def median_of(n: int, run: Callable[[int], float]) -> float:
    return statistics.median(run(i) for i in range(n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--meters", type=int, default=1000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="50 meters × 2 days")
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.meters, args.days = 50, 2
    console = Console()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        path = tmp / "reads.csv"
        rows = make_csv(args.meters, args.days, path)
        data = path.read_bytes()
        console.print(f"{rows:,} rows, {len(data) / 1e6:.1f} MB, {args.meters} meters × {args.days} days")

        def read_csv(_i: int) -> float:
            t = time.perf_counter()
            pd.read_csv(path, dtype=str)
            return time.perf_counter() - t

        base = median_of(args.repeat, read_csv)
        results = [("pandas.read_csv (baseline)", base)]
        lite = median_of(args.repeat, lambda i: sqlite_run(tmp, args.meters, data, i))
        results.append(("ingest → SQLite", lite))
        if not args.no_postgres and pg_reachable():
            pg = median_of(args.repeat, lambda i: pg_run(args.meters, data, i))
            results.append(("ingest → PostgreSQL", pg))
        else:
            console.print("PostgreSQL not reachable at 127.0.0.1:5432: skipped")
    table = Table(title=f"Ingest, median of {args.repeat}")
    for col in ("what", "seconds", "rows/s", "× baseline time"):
        table.add_column(col, justify="right" if col != "what" else "left")
    for name, secs in results:
        table.add_row(name, f"{secs:.3f}", f"{rows / secs:,.0f}", f"{secs / base:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
