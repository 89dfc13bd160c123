"""A simulated utility: a fleet with master data, realistic 15-minute load, and HES faults.

Everything is generated from a seed, so a demo or a test is reproducible. The load model is a
sum of daily shapes (residential morning and evening peaks, commercial business hours), a weekly
pattern, a per-consumer scale and day-to-day weather variation, with multiplicative noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from meter2cash.core.timeutil import local_frame, slot_starts

INTERVAL_S = 900
SLOTS = 96

#: Tariff code per (customer class, payment mode); the demo loads these from examples/tariffs.
TARIFF_OF = {
    ("residential", "postpaid"): "RES-LT1",
    ("residential", "prepaid"): "RES-PP",
    ("commercial", "postpaid"): "COM-TOU",
}


@dataclass(frozen=True)
class FleetConfig:
    meters: int = 1000
    share_commercial: float = 0.15
    share_prepaid: float = 0.10
    meters_per_dt: int = 25
    dts_per_feeder: int = 10
    seed: int = 42


@dataclass
class Fleet:
    """The simulated utility's consumers, one meter each (row ``i`` everywhere)."""

    serials: list[str]
    customer_class: npt.NDArray[np.str_]
    payment_mode: npt.NDArray[np.str_]
    dcu: list[str]
    daily_kwh: npt.NDArray[np.float64]
    bundle: dict[str, list[dict[str, Any]]]

    def __len__(self) -> int:
        return len(self.serials)


def build_fleet(cfg: FleetConfig, start: date, tz: str) -> Fleet:
    """Master data for ``cfg.meters`` consumers, in the master-data bundle format (docs/masterdata.md)."""
    rng = np.random.default_rng(cfg.seed)
    n = cfg.meters
    n_dt = max(1, -(-n // cfg.meters_per_dt))
    n_feeder = max(1, -(-n_dt // cfg.dts_per_feeder))
    is_com = rng.random(n) < cfg.share_commercial
    is_pp = ~is_com & (rng.random(n) < cfg.share_prepaid / max(1e-9, 1 - cfg.share_commercial))
    cls = np.where(is_com, "commercial", "residential")
    mode = np.where(is_pp, "prepaid", "postpaid")
    # Indian urban households: a few kWh a day; shops and offices: tens to hundreds.
    daily = np.where(is_com, rng.lognormal(np.log(60.0), 0.6, n), rng.lognormal(np.log(6.0), 0.45, n))
    sanctioned = np.where(is_com, np.ceil(daily / 6.0), np.clip(np.ceil(daily / 3.0), 1, 10))
    installed_at = datetime(start.year, start.month, start.day, tzinfo=ZoneInfo(tz)) - timedelta(days=400)
    first_names = ["Asha", "Ravi", "Meena", "Arjun", "Priya", "Vikram", "Lakshmi", "Suresh", "Anita", "Kiran"]
    last_names = ["Sharma", "Iyer", "Patel", "Reddy", "Khan", "Das", "Nair", "Singh", "Gupta", "Rao"]
    streets = ["MG Road", "Station Road", "Temple Street", "Lake View", "Park Avenue", "Market Lane"]

    feeders = [
        {"code": f"FDR-{f + 1:02d}", "name": f"11 kV feeder {f + 1}", "substation": "SS-CENTRAL"}
        for f in range(n_feeder)
    ]
    transformers, dcus = [], []
    for t in range(n_dt):
        code = f"DT-{t + 1:04d}"
        transformers.append(
            {
                "code": code,
                "name": f"Transformer {t + 1}",
                "feeder": feeders[t // cfg.dts_per_feeder]["code"],
                "capacity_kva": "250" if t % 3 else "400",
            }
        )
        dcus.append({"code": f"DCU-{t + 1:04d}", "name": f"DCU at {code}", "transformer": code})
    persons, accounts, premises, sps, meters, installs, sas = [], [], [], [], [], [], []
    serials, meter_dcu = [], []
    for i in range(n):
        k = i + 1
        dt = i // cfg.meters_per_dt
        serial = f"SM{k:07d}"
        serials.append(serial)
        meter_dcu.append(dcus[dt]["code"])
        com = bool(is_com[i])
        persons.append(
            {
                "key": f"P{k:07d}",
                "name": (
                    f"{last_names[i % 10]} Traders"
                    if com
                    else f"{first_names[i % 10]} {last_names[(i // 10) % 10]}"
                ),
                "phone": f"+91-98{k:08d}",
                "email": f"consumer{k}@example.org",
            }
        )
        accounts.append({"number": f"AC{k:08d}", "person": f"P{k:07d}", "customer_class": str(cls[i])})
        premises.append(
            {
                "code": f"PR{k:07d}",
                "address": f"{(i % 200) + 1} {streets[i % len(streets)]}",
                "city": "Pune",
                "postcode": f"4110{(i % 50):02d}",
            }
        )
        sps.append({"code": f"SP{k:07d}", "premise": f"PR{k:07d}", "transformer": transformers[dt]["code"]})
        meters.append(
            {
                "serial": serial,
                "manufacturer": "Simulated Metering Ltd",
                "model": "SM-3P" if com else "SM-1P",
                "phase": "three" if com else "single",
                "dcu": dcus[dt]["code"],
                "channels": [
                    {"reading_type": "kwh_import_15m", "multiplier": "1"},
                    {"reading_type": "kwh_import_register", "multiplier": "1"},
                ],
            }
        )
        installs.append(
            {
                "meter": serial,
                "service_point": f"SP{k:07d}",
                "installed_at": installed_at.isoformat(),
                "install_read_kwh": "0",
            }
        )
        sas.append(
            {
                "number": f"SA{k:08d}",
                "account": f"AC{k:08d}",
                "service_point": f"SP{k:07d}",
                "tariff_code": TARIFF_OF[(str(cls[i]), str(mode[i]))],
                "payment_mode": str(mode[i]),
                "sanctioned_load_kw": str(int(sanctioned[i])),
                "start_date": (installed_at.date()).isoformat(),
            }
        )
    bundle: dict[str, list[dict[str, Any]]] = {
        "feeders": feeders,
        "transformers": transformers,
        "dcus": dcus,
        "persons": persons,
        "accounts": accounts,
        "premises": premises,
        "service_points": sps,
        "meters": meters,
        "installations": installs,
        "service_agreements": sas,
    }
    return Fleet(serials, cls, mode, meter_dcu, daily, bundle)


def _bump(hour: npt.NDArray[np.float64], centre: float, width: float) -> npt.NDArray[np.float64]:
    d = np.minimum(np.abs(hour - centre), 24 - np.abs(hour - centre))
    return np.asarray(np.exp(-0.5 * (d / width) ** 2))


def load_shapes(epoch_s: npt.NDArray[np.int64], tz: str) -> dict[str, npt.NDArray[np.float64]]:
    """Normalised local-time load shapes (mean 1 over a week) per customer class, shape ``(T,)``."""
    cal = local_frame(epoch_s, tz)
    hour = cal["minute_of_day"].to_numpy(np.float64) / 60.0
    weekend = cal["weekday"].to_numpy() >= 5
    res = 0.35 + 0.9 * _bump(hour, 7.5, 1.3) + 1.6 * _bump(hour, 20.5, 1.8) + 0.3 * _bump(hour, 13.5, 2.0)
    res = res * np.where(weekend, 1.12, 1.0)
    business = ((hour >= 9) & (hour < 19)).astype(np.float64)
    com = 0.25 + 1.5 * business * np.where(weekend, 0.35, 1.0) + 0.4 * _bump(hour, 19.5, 1.0) * ~weekend
    return {"residential": res / res.mean(), "commercial": com / com.mean()}


def simulate_load(
    fleet: Fleet, start_utc: datetime, n_intervals: int, tz: str, seed: int = 7
) -> npt.NDArray[np.float64]:
    """True 15-minute consumption [kWh], shape ``(meters, n_intervals)``, non-negative, rounded to Wh."""
    rng = np.random.default_rng(seed)
    epoch = slot_starts(start_utc, n_intervals, INTERVAL_S)
    shapes = load_shapes(epoch, tz)
    n_days = -(-n_intervals // SLOTS)
    weather = 1.0 + 0.12 * np.sin(np.arange(n_days) / 4.0) + rng.normal(0, 0.05, n_days)
    day_factor = np.repeat(weather, SLOTS)[:n_intervals]
    shape = np.where(
        (fleet.customer_class == "commercial")[:, None], shapes["commercial"], shapes["residential"]
    )
    per_interval = (fleet.daily_kwh / SLOTS)[:, None]
    noise = rng.lognormal(0.0, 0.25, (len(fleet), n_intervals))
    values = per_interval * shape * day_factor * noise
    return np.round(values, 3)


@dataclass
class FaultLog:
    """What the simulated HES did wrong, so a demo can show VEE found it."""

    gaps: list[tuple[int, int, int]] = field(default_factory=list)  #: (meter row, first interval, length)
    spikes: list[tuple[int, int]] = field(default_factory=list)
    negatives: list[tuple[int, int]] = field(default_factory=list)
    stuck: list[tuple[int, int, int]] = field(default_factory=list)
    late: list[tuple[int, int, int]] = field(default_factory=list)  #: delivered in a late file

    def summary(self) -> dict[str, int]:
        return {
            "gaps": len(self.gaps),
            "gap_intervals": sum(g[2] for g in self.gaps),
            "spikes": len(self.spikes),
            "negatives": len(self.negatives),
            "stuck_meters": len(self.stuck),
            "late_intervals": sum(x[2] for x in self.late),
        }


def inject_faults(
    true: npt.NDArray[np.float64], seed: int = 11
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], FaultLog]:
    """The values the HES delivers: gaps (NaN), spikes, negatives and a stuck meter.

    Returns ``(delivered, late_mask, log)``: ``late_mask`` marks intervals held back and delivered
    in late files after the first VEE pass.
    """
    rng = np.random.default_rng(seed)
    n, t = true.shape
    out = true.copy()
    late = np.zeros_like(out, dtype=bool)
    log = FaultLog()
    for m in rng.choice(n, size=max(1, n * 4 // 100), replace=False):  # short and long gaps
        length = int(rng.choice([1, 2, 3, 6, 12, 40]))
        s = int(rng.integers(0, t - length))
        out[m, s : s + length] = np.nan
        log.gaps.append((int(m), s, length))
    for m in rng.choice(n, size=max(1, n // 100), replace=False):  # whole days delivered late
        day = int(rng.integers(1, max(2, t // SLOTS - 1)))
        s = day * SLOTS
        late[m, s : s + SLOTS] = True
        log.late.append((int(m), s, SLOTS))
    for m in rng.choice(n, size=max(1, n // 100), replace=False):
        s = int(rng.integers(1, t - 1))
        out[m, s] = round(float(np.nanmax(true[m])) * 15 + 5.0, 3)
        log.spikes.append((int(m), s))
    for m in rng.choice(n, size=max(1, n // 200), replace=False):
        s = int(rng.integers(0, t))
        out[m, s] = -abs(out[m, s] if np.isfinite(out[m, s]) else 0.1) - 0.05
        log.negatives.append((int(m), s))
    m = int(rng.integers(0, n))  # a stuck meter: the same reading for a day and a half
    s, length = t // 3, min(144, t // 3)
    out[m, s : s + length] = out[m, s] if np.isfinite(out[m, s]) and out[m, s] > 0 else 0.2
    log.stuck.append((m, s, length))
    return out, late, log
