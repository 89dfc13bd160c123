"""Ingest through NATS JetStream with parallel workers, against one process ingesting directly.

Run: ``python benchmarks/bench_nats_ingest.py`` (1,000 meters × 7 days, one file per meter group
and day) or ``--quick``. Both paths write into fresh PostgreSQL databases created and dropped here
(127.0.0.1:5432); the NATS stream is created and deleted here (127.0.0.1:4222). Figures are the
median of ``--repeat`` runs. With two cores, two workers is the honest ceiling on this machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import make_csv, prepare
from meter2cash.db import make_engine, session_factory
from meter2cash.integration.nats_bus import NatsConfig, delete_stream
from meter2cash.integration.nats_ingest import publish_files, split_file
from meter2cash.mdm.ingest import ingest_paths

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NATS = os.environ.get("M2C_NATS_URL", "nats://127.0.0.1:4222")


def split_files(src: Path, out: Path, parts: int) -> list[Path]:
    """Cut one CSV into ``parts`` files of whole lines (like a HES delivering per DCU)."""
    header, *lines = src.read_text().splitlines(keepends=True)
    size = -(-len(lines) // parts)
    paths = []
    for i in range(parts):
        p = out / f"hes-{i:03d}.csv"
        p.write_text(header + "".join(lines[i * size : (i + 1) * size]))
        paths.append(p)
    return paths


def fresh_db(meters: int) -> tuple[str, str]:
    name = f"m2c_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    prepare(url, meters)
    return name, url


def drop_db(name: str) -> None:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def direct(url: str, files: list[Path]) -> float:
    engine = make_engine(url)
    t0 = time.perf_counter()
    ingest_paths(session_factory(engine), files, source="bench")
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return elapsed


def via_nats(url: str, files: list[Path], workers: int) -> tuple[float, float]:
    """Workers are started (and connected) first; the clock runs from the publish until the
    database holds every message's batch."""
    tag = uuid.uuid4().hex[:8]
    cfg = NatsConfig(url=NATS, stream=f"M2C_BENCH_{tag}", prefix=f"m2cbench{tag}")
    env = {**os.environ, "M2C_DATABASE_URL": url}
    expected = sum(len(split_file(p.read_bytes(), p.name)) for p in files)
    engine = make_engine(url)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "meter2cash.cli",
                "worker",
                "ingest",
                "--nats",
                NATS,
                "--stream",
                cfg.stream,
                "--prefix",
                cfg.prefix,
                "--idle",
                "60",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        time.sleep(4.0)  # imports and connection; not part of the measured work
        t0 = time.perf_counter()
        publish_files(files, cfg, source="bench")
        t_pub = time.perf_counter() - t0
        with engine.connect() as conn:
            while conn.execute(text("select count(*) from raw_batch")).scalar_one() < expected:
                if time.perf_counter() - t0 > 900:
                    raise RuntimeError("workers did not finish in 15 minutes")
                time.sleep(0.02)
                conn.rollback()
        return t_pub, time.perf_counter() - t0
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        engine.dispose()
        delete_stream(cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--meters", type=int, default=1000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--files", type=int, default=28)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.meters, args.days, args.files, args.repeat = 100, 2, 8, 1
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "all.csv"
        rows = make_csv(args.meters, args.days, src)
        files = split_files(src, Path(tmp), args.files)
        console.print(f"{rows:,} rows in {len(files)} files, {args.meters} meters × {args.days} days")
        results: dict[str, list[float]] = {"direct": [], "publish": []}
        for w in (1, 2):
            results[f"nats{w}"] = []
        for _ in range(args.repeat):
            name, url = fresh_db(args.meters)
            try:
                results["direct"].append(direct(url, files))
            finally:
                drop_db(name)
            for w in (1, 2):
                name, url = fresh_db(args.meters)
                try:
                    t_pub, total = via_nats(url, files, w)
                    results[f"nats{w}"].append(total)
                    results["publish"].append(t_pub)
                finally:
                    drop_db(name)
    med = {k: statistics.median(v) for k, v in results.items()}
    table = Table(title=f"Ingest into PostgreSQL, median of {args.repeat}")
    for col in ("path", "seconds", "rows/s", "vs direct"):
        table.add_column(col, justify="left" if col == "path" else "right")
    table.add_row(
        "direct: one process, ingest_paths (baseline)",
        f"{med['direct']:.2f}",
        f"{rows / med['direct']:,.0f}",
        "1.00×",
    )
    table.add_row("publish to JetStream only", f"{med['publish']:.2f}", f"{rows / med['publish']:,.0f}", "")
    for w in (1, 2):
        t = med[f"nats{w}"]
        table.add_row(
            f"NATS: publish + {w} worker(s), end to end",
            f"{t:.2f}",
            f"{rows / t:,.0f}",
            f"{med['direct'] / t:.2f}×",
        )
    console.print(table)


if __name__ == "__main__":
    main()
