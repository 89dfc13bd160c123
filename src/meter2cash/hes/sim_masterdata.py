"""The master-data bundle of a simulated fleet (docs/masterdata.md), so the MDM knows every serial
the simulator speaks of.

The bundle holds the feeders, transformers and DCUs, the consumers (persons, accounts, premises,
service points, installations and service agreements, a share prepaid — from
:func:`meter2cash.hes.simulator.build_fleet`), every consumer meter with its channels (block-load
kWh, kVAh, average voltage and current at the fleet's capture period; the cumulative, maximum-demand,
average-PF and MD-reset registers; the instantaneous values, per phase on three-phase meters) and
the DT and feeder boundary meters. The bundle format has no entity for a boundary meter's place, so
the bundle lists it under the top-level key ``$boundary_meters`` (keys starting with ``$`` are
ignored by ``m2c masterdata load``): ``{"serial", "transformer" | "feeder", "from"}`` each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meter2cash.hes.fleet import CONSUMER, DT_METER, SimFleet

REGISTERS = (
    "kwh_import_register",
    "kvah_import_register",
    "kw_md_register",
    "pf_average_register",
    "md_reset_count",
)
INSTANT = ("kw_instant", "kva_instant", "voltage_instant", "current_instant", "pf_instant")
PHASES = tuple(f"{q}_{ph}_instant" for q in ("voltage", "current", "pf") for ph in ("r", "y", "b"))
MANUFACTURER = "Simulated Metering Ltd"


def channels(interval_s: int, three_phase: bool) -> list[dict[str, str]]:
    """A simulated meter's channels: what its profiles carry."""
    suffix = {900: "15m", 1800: "30m"}[interval_s]
    codes = [f"{q}_{suffix}" for q in ("kwh_import", "kvah_import", "voltage_avg", "current_avg")]
    codes += [*REGISTERS, *INSTANT, *(PHASES if three_phase else ())]
    return [{"reading_type": c, "multiplier": "1"} for c in codes]


def fleet_bundle(fleet: SimFleet) -> dict[str, Any]:
    """The fleet's master data as one bundle (a JSON object)."""
    spec = fleet.spec
    base = fleet.consumers.bundle
    meters: list[dict[str, Any]] = []
    boundary: list[dict[str, Any]] = []
    since = fleet.consumers.bundle["installations"][0]["installed_at"] if fleet.n_consumers else spec.start
    for i, serial in enumerate(fleet.serial):
        kind = int(fleet.kind[i])
        three = bool(fleet.three_phase[i])
        record = {
            "serial": serial,
            "manufacturer": MANUFACTURER,
            "model": ("SM-3P" if three else "SM-1P") if kind == CONSUMER else "BM-3P",
            "phase": "three" if three else "single",
            "channels": channels(spec.interval_s, three),
        }
        if fleet.dcu_of[i] >= 0:
            record["dcu"] = fleet.dcu_code(i)
        meters.append(record)
        if kind == DT_METER:
            boundary.append(
                {"serial": serial, "transformer": fleet.dt_codes[int(fleet.dt_of[i])], "from": since}
            )
        elif kind != CONSUMER:
            boundary.append(
                {"serial": serial, "feeder": fleet.feeder_codes[int(fleet.feeder_of[i])], "from": since}
            )
    return {
        "$comment": f"simulated fleet: {fleet.n_consumers} consumer meters, seed {spec.seed}",
        "feeders": base["feeders"],
        "transformers": base["transformers"],
        "dcus": base["dcus"],
        "persons": base["persons"],
        "accounts": base["accounts"],
        "premises": base["premises"],
        "service_points": base["service_points"],
        "meters": meters,
        "installations": base["installations"],
        "service_agreements": base["service_agreements"],
        "$boundary_meters": boundary,
    }


def write_bundle(fleet: SimFleet, path: Path) -> dict[str, int]:
    """Write the bundle to ``path`` (JSON); answers the count of each entity."""
    bundle = fleet_bundle(fleet)
    path.write_text(json.dumps(bundle, indent=1))
    return {k: len(v) for k, v in bundle.items() if isinstance(v, list)}
