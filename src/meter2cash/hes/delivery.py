"""Write what a head-end system delivers: daily reading files in the documented CSV and JSON formats.

Meters on even-numbered DCUs arrive as CSV, the others as JSON (so both formats are exercised).
Each daily CSV repeats the previous day's last hour (HES re-delivery: interval duplicates), one
file is sent twice (a duplicate file), held-back intervals come in late files, and one file carries
malformed lines (an unknown meter, a naive timestamp, a bad value, a garbled time).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from meter2cash.hes.simulator import INTERVAL_S, SLOTS, Fleet

OVERLAP = 4
CHANNEL = "kwh_import_15m"
REGISTER = "kwh_import_register"


@dataclass
class Delivery:
    on_time: list[Path] = field(default_factory=list)
    late: list[Path] = field(default_factory=list)
    malformed_lines: int = 0


def _iso(epoch: npt.NDArray[np.int64]) -> npt.NDArray[np.str_]:
    return np.char.add(np.datetime_as_string(epoch.astype("datetime64[s]"), unit="s"), "Z")


def _csv_rows(
    serials: npt.NDArray[np.str_],
    epoch: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    channel: str = CHANNEL,
) -> pd.DataFrame:
    """Long-format rows for a (meters, intervals) block, skipping NaN (not delivered)."""
    m_idx, t_idx = np.nonzero(~np.isnan(values))
    return pd.DataFrame(
        {
            "meter": serials[m_idx],
            "channel": channel,
            "start": _iso(epoch[t_idx]),
            "value": values[m_idx, t_idx],
        }
    )


def register_reads(
    true: npt.NDArray[np.float64], start_register: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Cumulative kWh register at each UTC midnight from day 1 on, shape ``(meters, days)``."""
    days = true.shape[1] // SLOTS
    daily = true[:, : days * SLOTS].reshape(true.shape[0], days, SLOTS).sum(axis=2)
    return np.round(start_register[:, None] + np.cumsum(daily, axis=1), 3)


def write_delivery(
    fleet: Fleet,
    delivered: npt.NDArray[np.float64],
    late_mask: npt.NDArray[np.bool_],
    true: npt.NDArray[np.float64],
    start_utc: datetime,
    out_dir: Path,
    seed: int = 5,
) -> Delivery:
    """Write the HES files for the window starting at ``start_utc`` (a UTC midnight)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    serials = np.asarray(fleet.serials)
    group_b = np.array([int(d.rsplit("-", 1)[1]) % 2 == 0 for d in fleet.dcu])
    epoch0 = int(start_utc.timestamp())
    n_days = delivered.shape[1] // SLOTS
    registers = register_reads(true, rng.uniform(1000, 20000, len(fleet)).round(3))
    on_time = np.where(late_mask, np.nan, delivered)
    result = Delivery()
    for d in range(n_days):
        lo = max(0, d * SLOTS - OVERLAP)
        hi = (d + 1) * SLOTS
        epoch = epoch0 + np.arange(lo, hi, dtype=np.int64) * INTERVAL_S
        day_label = np.datetime_as_string(np.datetime64(epoch0 + d * 86400, "s"), unit="D")
        # CSV group: interval rows plus the register read at the end of the day.
        a = ~group_b
        rows = _csv_rows(serials[a], epoch, on_time[a, lo:hi])
        reg = pd.DataFrame(
            {
                "meter": serials[a],
                "channel": REGISTER,
                "start": _iso(np.full(int(a.sum()), epoch0 + (d + 1) * 86400, dtype=np.int64)),
                "value": registers[a, d],
            }
        )
        frame = pd.concat([rows, reg], ignore_index=True)
        path = out_dir / f"hes-A-{day_label}.csv"
        frame.to_csv(path, index=False, float_format="%.3f")
        if d == n_days // 2:
            with path.open("a") as fh:
                fh.write(f"SM9999999,{CHANNEL},{_iso(epoch[-1:])[0]},0.125\n")
                fh.write(f"{serials[a][0]},{CHANNEL},2026-13-45T25:00:00Z,0.1\n")
                fh.write(f"{serials[a][0]},{CHANNEL},{_iso(epoch[-1:])[0][:-1]},0.1\n")
                fh.write(f"{serials[a][0]},{CHANNEL},{_iso(epoch[-1:])[0]},abc\n")
            result.malformed_lines += 4
        result.on_time.append(path)
        if d == 1:
            resend = out_dir / f"hes-A-{day_label}-resend.csv"
            resend.write_bytes(path.read_bytes())
            result.on_time.append(resend)
        # JSON group: one block per meter-day (null = not delivered), registers alongside.
        b = np.nonzero(group_b)[0]
        start_iso = _iso(np.array([epoch0 + lo * INTERVAL_S], dtype=np.int64))[0]
        block = on_time[b, lo:hi]
        doc = {
            "source": "HES-B",
            "readings": [
                {
                    "meter": serials[i],
                    "channel": CHANNEL,
                    "start": start_iso,
                    "interval_s": INTERVAL_S,
                    "values": [None if np.isnan(v) else round(float(v), 3) for v in block[k]],
                }
                for k, i in enumerate(b)
            ],
            "registers": [
                {
                    "meter": serials[i],
                    "channel": REGISTER,
                    "read_at": _iso(np.array([epoch0 + (d + 1) * 86400], dtype=np.int64))[0],
                    "value": float(registers[i, d]),
                }
                for i in b
            ],
        }
        path = out_dir / f"hes-B-{day_label}.json"
        path.write_text(json.dumps(doc, separators=(",", ":")))
        result.on_time.append(path)
    # Late files: the held-back intervals, delivered after the first VEE pass.
    held = np.where(late_mask, delivered, np.nan)
    if np.isfinite(held).any():
        epoch = epoch0 + np.arange(delivered.shape[1], dtype=np.int64) * INTERVAL_S
        path = out_dir / "hes-late-001.csv"
        _csv_rows(serials, epoch, held).to_csv(path, index=False, float_format="%.3f")
        result.late.append(path)
    return result
