"""Reading files through NATS JetStream: split, published, ingested by workers exactly once."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import func, select

from meter2cash.integration.nats_ingest import publish_files, run_worker, split_file
from meter2cash.mdm.models import Channel, Meter, RawBatch
from meter2cash.mdm.reading_types import ensure_catalogue
from meter2cash.mdm.store import MeasurementStore


def _meters(session, n: int) -> dict[str, int]:
    rts = ensure_catalogue(session)
    out = {}
    for i in range(n):
        m = Meter(serial=f"M-{i}", status="installed")
        session.add(m)
        session.flush()
        ch = Channel(meter_id=m.id, reading_type_id=rts["kwh_import_15m"].id)
        session.add(ch)
        session.flush()
        out[m.serial] = ch.id
    session.commit()
    return out


def _csv(serials, days: int, start=datetime(2026, 9, 1, tzinfo=UTC)) -> tuple[bytes, float]:
    lines = ["meter,channel,start,value"]
    total = 0.0
    for s in serials:
        for k in range(days * 96):
            v = round(0.1 + (k % 96) / 1000, 3)
            total += v
            ts = (start + timedelta(minutes=15 * k)).strftime("%Y-%m-%dT%H:%M:%SZ")
            lines.append(f"{s},kwh_import_15m,{ts},{v}")
    return ("\n".join(lines) + "\n").encode(), total


def test_split_keeps_every_record_and_is_deterministic():
    data, _ = _csv(["M-0", "M-1"], 2)
    parts = split_file(data, "a.csv", max_bytes=4000)
    assert len(parts) >= 5 and all(len(p) <= 4000 for p in parts)
    assert all(p.startswith(b"meter,channel,start,value\n") for p in parts)
    assert sum(p.count(b"\n") - 1 for p in parts) == 2 * 2 * 96
    assert parts == split_file(data, "a.csv", max_bytes=4000)
    doc = {
        "source": "x",
        "readings": [{"meter": "M-0", "channel": "c", "start": "s", "values": [1.0] * 96}] * 30,
    }
    jparts = split_file(json.dumps(doc).encode(), "a.json", max_bytes=3000)
    assert sum(len(json.loads(p)["readings"]) for p in jparts) == 30
    assert all(json.loads(p)["source"] == "x" for p in jparts)


def test_two_workers_ingest_a_large_file_exactly_once(platform, nats_stream, tmp_path):
    with platform.sessions() as s:
        channels = _meters(s, 6)
    data, total = _csv(list(channels), 10)  # 5,760 rows, ~330 kB
    path = tmp_path / "hes-day.csv"
    path.write_bytes(data)
    parts = split_file(data, path.name, max_bytes=40_000)
    assert publish_files([path], nats_stream, max_bytes=40_000) == len(parts)
    assert (
        publish_files([path], nats_stream, max_bytes=40_000) == 0
    )  # the HES retried: JetStream keeps one copy

    counts: list[int] = []

    def worker() -> None:
        counts.append(run_worker(platform.sessions, nats_stream, batch=2, idle_timeout_s=1.0))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sum(counts) == len(parts)
    with platform.sessions() as s:
        assert s.scalar(select(func.count()).select_from(RawBatch)) == len(parts)
        w = MeasurementStore(s).read_window(
            list(channels.values()), datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 9, 11, tzinfo=UTC), 900
        )
    assert not np.isnan(w.values).any()
    assert abs(float(w.values.sum()) - total) < 1e-6


def test_an_unreadable_message_is_terminated_not_retried_forever(platform, nats_stream, tmp_path):
    bad = tmp_path / "garbage.csv"
    bad.write_bytes(b"\x00\x01 not a reading file")
    publish_files([bad], nats_stream)
    errors: list[str] = []
    assert (
        run_worker(
            platform.sessions, nats_stream, idle_timeout_s=0.5, on_error=lambda n, e: errors.append(e.code)
        )
        == 1
    )
    assert errors == ["ingest.bad_file"]
    assert run_worker(platform.sessions, nats_stream, idle_timeout_s=0.5) == 0
