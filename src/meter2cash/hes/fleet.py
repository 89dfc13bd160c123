"""The simulated fleet behind a head-end: consumer meters under DCUs, DTs and feeders, with the
DT and feeder boundary meters, and each meter's state.

Row ``i`` of every array is one meter: first the consumer meters (``SM…``, from
:func:`meter2cash.hes.simulator.build_fleet`), then one boundary meter per distribution
transformer (``DTM-<dt>``), then one per feeder (``FDM-<feeder>``). A DT meter measures the sum of
its consumers' energy × (1 + the DT's technical loss + its theft share); a feeder meter the sum of
its DT meters × (1 + the feeder's technical loss), so an energy audit finds the losses.

Everything static is generated from :class:`FleetSpec` (its seed); the state (relay, credit,
payment mode, clock drift, firmware, load limit, TOU, maximum demand and the cumulative registers)
is changed by the simulation and by commands. The per-interval updates work on whole arrays.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from meter2cash.core.errors import InvalidInput
from meter2cash.core.timeutil import slots_per_day
from meter2cash.hes.simulator import Fleet, FleetConfig, build_fleet, load_shapes

CONSUMER, DT_METER, FEEDER_METER = 0, 1, 2
#: Firmware the fleet starts with.
FIRMWARE = "1.4.2"
#: Nominal phase voltage [V] of an LT consumer and a DT meter; of an 11 kV feeder meter.
LT_VOLTS = 240.0
HT_VOLTS = 11000.0 / math.sqrt(3.0)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FleetSpec:
    """What ``m2c hes-sim init`` was given; the whole fleet follows from it."""

    meters: int = 100
    dcus: int = 4
    start: str = "2026-10-01"
    days: int = 1
    #: Capture period of the block-load profile [s]: 900 or 1800.
    interval_s: int = 900
    seed: int = 42
    tz: str = "Asia/Kolkata"
    dts_per_feeder: int = 10
    share_commercial: float = 0.15
    share_prepaid: float = 0.10
    #: Share of DTs with energy theft behind them (a theft share of 5–15 % on top of the loss).
    share_theft_dts: float = 0.2
    #: Share of meters whose clock drifts by minutes until a time sync (the others by seconds).
    share_drifting: float = 0.05

    def __post_init__(self) -> None:
        problems = []
        if self.meters < 1:
            problems.append("meters must be at least 1")
        if not 1 <= self.dcus <= self.meters:
            problems.append("dcus must be between 1 and the number of meters")
        if self.interval_s not in (900, 1800):
            problems.append("the capture period must be 15 or 30 minutes (interval_s 900 or 1800)")
        if self.days < 1:
            problems.append("days must be at least 1")
        try:
            date.fromisoformat(self.start)
            ZoneInfo(self.tz)
        except (ValueError, KeyError) as exc:
            problems.append(str(exc))
        if problems:
            raise InvalidInput("; ".join(problems), code="hes_sim.bad_spec")

    @property
    def meters_per_dt(self) -> int:
        return -(-self.meters // self.dcus)

    @property
    def start_date(self) -> date:
        return date.fromisoformat(self.start)

    @property
    def slots(self) -> int:
        return slots_per_day(self.interval_s)

    def start_utc(self) -> datetime:
        """Local midnight of the first simulated day."""
        d = self.start_date
        return datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(self.tz))

    def consumer_config(self) -> FleetConfig:
        return FleetConfig(
            meters=self.meters,
            share_commercial=self.share_commercial,
            share_prepaid=self.share_prepaid,
            meters_per_dt=self.meters_per_dt,
            dts_per_feeder=self.dts_per_feeder,
            seed=self.seed,
        )


@dataclass
class SimFleet:
    """The fleet's static attributes and its state, one row per meter (see the module's doc)."""

    spec: FleetSpec
    consumers: Fleet
    serial: list[str]
    kind: npt.NDArray[np.int8]
    dt_codes: list[str]
    feeder_codes: list[str]
    dcu_codes: list[str]
    dt_of: I64  #: DT index (-1 for a feeder meter)
    feeder_of: I64
    feeder_of_dt: I64
    dcu_of: I64  #: DCU index the meter talks through (-1: straight to the HES)
    three_phase: npt.NDArray[np.bool_]
    commercial: npt.NDArray[np.bool_]
    daily_kwh: F64
    sanctioned_kw: F64
    pf: F64
    nominal_v: F64
    dt_loss: F64  #: technical loss share of each DT
    dt_theft: F64  #: theft share of each DT (0 for most)
    feeder_loss: F64
    dt_voltage: F64  #: each DT's voltage level as a factor of nominal
    # --- state ---
    connected: npt.NDArray[np.bool_]
    prepaid: npt.NDArray[np.bool_]
    credit: list[Decimal]
    drift_s: F64
    drift_rate: F64  #: seconds a day
    firmware: list[str]
    load_limit_kw: F64  #: NaN: none configured (the sanctioned load applies)
    tou: dict[int, dict[str, Any]] = field(default_factory=dict)
    kwh_reg: F64 = field(default_factory=lambda: np.zeros(0))
    kvah_reg: F64 = field(default_factory=lambda: np.zeros(0))
    period_kwh: F64 = field(default_factory=lambda: np.zeros(0))
    period_kvah: F64 = field(default_factory=lambda: np.zeros(0))
    md_kw: F64 = field(default_factory=lambda: np.zeros(0))
    md_at: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    md_reset_count: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    md_reset_at: I64 = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.serial)

    @property
    def n_consumers(self) -> int:
        return len(self.consumers)

    @cached_property
    def index(self) -> dict[str, int]:
        """Row of each serial."""
        return {s: i for i, s in enumerate(self.serial)}

    def dcu_code(self, i: int) -> str:
        d = int(self.dcu_of[i])
        return self.dcu_codes[d] if d >= 0 else ""

    def limit_kw(self) -> F64:
        """The demand limit of each meter [kW]: the configured load limit, else the sanctioned load
        (boundary meters have none: infinity)."""
        limit = np.where(np.isnan(self.load_limit_kw), self.sanctioned_kw, self.load_limit_kw)
        return np.where(self.kind == CONSUMER, limit, np.inf)


def build_sim_fleet(spec: FleetSpec) -> SimFleet:
    """The fleet of ``spec``: the same seed gives the same fleet."""
    start = spec.start_date
    consumers = build_fleet(spec.consumer_config(), start, spec.tz)
    b = consumers.bundle
    n = len(consumers)
    dt_codes = [t["code"] for t in b["transformers"]]
    feeder_codes = [f["code"] for f in b["feeders"]]
    dcu_codes = [d["code"] for d in b["dcus"]]
    dt_index = {c: i for i, c in enumerate(dt_codes)}
    feeder_index = {c: i for i, c in enumerate(feeder_codes)}
    dcu_index = {c: i for i, c in enumerate(dcu_codes)}
    feeder_of_dt = np.array([feeder_index[t["feeder"]] for t in b["transformers"]], np.int64)
    dcu_dt = {d["code"]: dt_index[d["transformer"]] for d in b["dcus"]}
    cons_dcu = np.array([dcu_index[c] for c in consumers.dcu], np.int64)
    cons_dt = np.array([dcu_dt[c] for c in consumers.dcu], np.int64)
    n_dt, n_fd = len(dt_codes), len(feeder_codes)
    dcu_of_dt = np.array([dcu_index[d["code"]] for d in b["dcus"]], np.int64)[
        np.argsort([dt_index[d["transformer"]] for d in b["dcus"]])
    ]

    rng = np.random.default_rng([spec.seed, 1])
    serial = [*consumers.serials, *(f"DTM-{c}" for c in dt_codes), *(f"FDM-{c}" for c in feeder_codes)]
    total = len(serial)
    kind = np.concatenate([np.zeros(n, np.int8), np.ones(n_dt, np.int8), np.full(n_fd, 2, np.int8)])
    dt_of = np.concatenate([cons_dt, np.arange(n_dt), np.full(n_fd, -1)]).astype(np.int64)
    feeder_of = np.concatenate([feeder_of_dt[cons_dt], feeder_of_dt, np.arange(n_fd)]).astype(np.int64)
    dcu_of = np.concatenate([cons_dcu, dcu_of_dt, np.full(n_fd, -1)]).astype(np.int64)
    commercial = np.concatenate([consumers.customer_class == "commercial", np.zeros(n_dt + n_fd, bool)])
    three_phase = commercial | (kind != CONSUMER)
    sanctioned = {sa["service_point"]: float(sa["sanctioned_load_kw"]) for sa in b["service_agreements"]}
    sp_of = {i["meter"]: i["service_point"] for i in b["installations"]}
    sanctioned_kw = np.concatenate(
        [np.array([sanctioned[sp_of[s]] for s in consumers.serials]), np.full(n_dt + n_fd, np.inf)]
    )
    daily = np.concatenate([consumers.daily_kwh, np.zeros(n_dt + n_fd)])
    pf = np.concatenate(
        [
            np.round(np.where(commercial[:n], rng.uniform(0.86, 0.97, n), rng.uniform(0.9, 0.99, n)), 3),
            np.round(rng.uniform(0.9, 0.96, n_dt), 3),
            np.round(rng.uniform(0.92, 0.97, n_fd), 3),
        ]
    )
    nominal_v = np.where(kind == FEEDER_METER, HT_VOLTS, LT_VOLTS)
    dt_loss = np.round(rng.uniform(0.02, 0.05, n_dt), 4)
    theft = np.where(rng.random(n_dt) < spec.share_theft_dts, rng.uniform(0.05, 0.15, n_dt), 0.0)
    dt_theft = np.asarray(np.round(theft, 4), np.float64)
    feeder_loss = np.round(rng.uniform(0.01, 0.03, n_fd), 4)
    dt_voltage = np.round(rng.uniform(0.94, 1.03, n_dt), 3)
    drifting = rng.random(total) < spec.share_drifting
    drift_rate = np.where(drifting, rng.uniform(60, 240, total), rng.uniform(-1.5, 1.5, total))
    drift_rate = np.round(drift_rate * np.where(rng.random(total) < 0.5, -1, 1), 2)
    prepaid = np.concatenate([consumers.payment_mode == "prepaid", np.zeros(n_dt + n_fd, bool)])
    credit = [Decimal("600.00") if p else Decimal("0.00") for p in prepaid]
    # The registers start where 400 days of use left them (installation 400 days before start).
    kwh_reg = np.round(np.concatenate([daily[:n] * 400 * rng.uniform(0.8, 1.2, n), np.zeros(n_dt + n_fd)]), 3)
    kvah_reg = np.round(kwh_reg / pf, 3)
    start_epoch = int(spec.start_utc().timestamp())
    fleet = SimFleet(
        spec=spec,
        consumers=consumers,
        serial=serial,
        kind=kind,
        dt_codes=dt_codes,
        feeder_codes=feeder_codes,
        dcu_codes=dcu_codes,
        dt_of=dt_of,
        feeder_of=feeder_of,
        feeder_of_dt=feeder_of_dt,
        dcu_of=dcu_of,
        three_phase=three_phase,
        commercial=commercial,
        daily_kwh=daily,
        sanctioned_kw=sanctioned_kw,
        pf=pf,
        nominal_v=nominal_v,
        dt_loss=dt_loss,
        dt_theft=dt_theft,
        feeder_loss=feeder_loss,
        dt_voltage=dt_voltage,
        connected=np.ones(total, bool),
        prepaid=prepaid,
        credit=credit,
        drift_s=np.zeros(total),
        drift_rate=drift_rate,
        firmware=[FIRMWARE] * total,
        load_limit_kw=np.full(total, np.nan),
        kwh_reg=kwh_reg,
        kvah_reg=kvah_reg,
        period_kwh=np.zeros(total),
        period_kvah=np.zeros(total),
        md_kw=np.zeros(total),
        md_at=np.full(total, start_epoch, np.int64),
        md_reset_count=np.zeros(total, np.int64),
        md_reset_at=np.full(total, start_epoch, np.int64),
    )
    # Boundary registers start at what their consumers' registers imply.
    dt_reg, fd_reg = boundary_energy(kwh_reg[:n], cons_dt, dt_loss + dt_theft, feeder_of_dt, feeder_loss)
    fleet.kwh_reg[n : n + n_dt], fleet.kwh_reg[n + n_dt :] = dt_reg, fd_reg
    fleet.kvah_reg[n:] = np.round(fleet.kwh_reg[n:] / pf[n:], 3)
    return fleet


def boundary_energy(
    consumer_kwh: F64, dt_of: I64, dt_loss: F64, feeder_of_dt: I64, feeder_loss: F64
) -> tuple[F64, F64]:
    """Energy [kWh] through each DT meter and each feeder meter.

    ``consumer_kwh`` has one row per consumer (shape ``(n,)`` or ``(n, T)``); a DT meter measures
    the sum of its consumers' energy × (1 + ``dt_loss``) (technical loss plus theft, a share), a
    feeder meter the sum of its DT meters × (1 + ``feeder_loss``). Rounded to Wh.
    """
    kwh = np.asarray(consumer_kwh, np.float64)
    dt = np.zeros((len(dt_loss), *kwh.shape[1:]))
    np.add.at(dt, dt_of, kwh)
    dt = np.round(dt * (1.0 + dt_loss).reshape(-1, *([1] * (kwh.ndim - 1))), 3)
    fd = np.zeros((len(feeder_loss), *kwh.shape[1:]))
    np.add.at(fd, feeder_of_dt, dt)
    fd = np.round(fd * (1.0 + feeder_loss).reshape(-1, *([1] * (kwh.ndim - 1))), 3)
    return dt, fd


def consumer_day_kwh(fleet: SimFleet, day_index: int) -> F64:
    """Consumption [kWh] of each consumer in each block of simulated day ``day_index`` (0 = the
    first), shape ``(consumers, slots)``, from the demo's load shapes
    (:func:`meter2cash.hes.simulator.load_shapes`), a day's weather and per-block noise; the same
    day of the same fleet always gives the same values."""
    spec = fleet.spec
    slots = spec.slots
    t0 = int(spec.start_utc().timestamp()) + day_index * 86400
    epoch = t0 + np.arange(slots, dtype=np.int64) * spec.interval_s
    shapes = load_shapes(epoch, spec.tz)
    rng = np.random.default_rng([spec.seed, 2, day_index])
    weather = 1.0 + 0.12 * math.sin(day_index / 4.0) + float(rng.normal(0, 0.05))
    n = fleet.n_consumers
    shape = np.where(fleet.commercial[:n, None], shapes["commercial"], shapes["residential"])
    noise = rng.lognormal(0.0, 0.25, (n, slots))
    return np.round((fleet.daily_kwh[:n] / slots)[:, None] * shape * weather * noise, 3)


def write_fleet_json(fleet: SimFleet, path: Path) -> None:
    """``fleet.json``: the spec (from which ``m2c hes-sim run`` rebuilds the fleet) and what it made."""
    doc = {
        "spec": asdict(fleet.spec),
        "counts": {
            "consumer_meters": fleet.n_consumers,
            "dcus": len(fleet.dcu_codes),
            "transformers": len(fleet.dt_codes),
            "feeders": len(fleet.feeder_codes),
            "boundary_meters": len(fleet) - fleet.n_consumers,
        },
        "dcus": fleet.dcu_codes,
        "transformers": [
            {
                "code": c,
                "feeder": fleet.feeder_codes[int(fleet.feeder_of_dt[i])],
                "meter": f"DTM-{c}",
                "technical_loss": float(fleet.dt_loss[i]),
                "theft": float(fleet.dt_theft[i]),
            }
            for i, c in enumerate(fleet.dt_codes)
        ],
        "feeders": [
            {"code": c, "meter": f"FDM-{c}", "technical_loss": float(fleet.feeder_loss[i])}
            for i, c in enumerate(fleet.feeder_codes)
        ],
    }
    path.write_text(json.dumps(doc, indent=2))


def read_fleet_json(path: Path) -> FleetSpec:
    """The spec a ``fleet.json`` holds (``hes_sim.bad_fleet`` if it is not one)."""
    try:
        doc = json.loads(path.read_text())
        return FleetSpec(**doc["spec"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path} is not a fleet file: {exc}", code="hes_sim.bad_fleet") from None
