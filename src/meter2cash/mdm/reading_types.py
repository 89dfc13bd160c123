"""The standard reading-type catalogue (IS 15959 / DLMS OBIS codes), seeded on demand."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.mdm.models import ReadingType


@dataclass(frozen=True, slots=True)
class ReadingTypeSpec:
    code: str
    name: str
    obis: str
    unit: str
    interval_s: int | None
    direction: str = "import"
    accumulation: str = "delta"


#: Block-load-profile energy channels (1.0.99.1.0.255 captures these per block) and registers.
CATALOGUE: tuple[ReadingTypeSpec, ...] = (
    ReadingTypeSpec("kwh_import_15m", "Active energy import, 15-min block", "1.0.1.29.0.255", "kWh", 900),
    ReadingTypeSpec("kwh_import_30m", "Active energy import, 30-min block", "1.0.1.29.0.255", "kWh", 1800),
    ReadingTypeSpec("kwh_import_60m", "Active energy import, hourly", "1.0.1.29.0.255", "kWh", 3600),
    ReadingTypeSpec(
        "kwh_export_15m", "Active energy export, 15-min block", "1.0.2.29.0.255", "kWh", 900, "export"
    ),
    ReadingTypeSpec(
        "kwh_export_30m", "Active energy export, 30-min block", "1.0.2.29.0.255", "kWh", 1800, "export"
    ),
    ReadingTypeSpec("kvah_import_15m", "Apparent energy import, 15-min block", "1.0.9.29.0.255", "kVAh", 900),
    ReadingTypeSpec(
        "kvah_import_30m", "Apparent energy import, 30-min block", "1.0.9.29.0.255", "kVAh", 1800
    ),
    ReadingTypeSpec(
        "kwh_import_register",
        "Cumulative active energy import",
        "1.0.1.8.0.255",
        "kWh",
        None,
        accumulation="cumulative",
    ),
    ReadingTypeSpec(
        "kvah_import_register",
        "Cumulative apparent energy import",
        "1.0.9.8.0.255",
        "kVAh",
        None,
        accumulation="cumulative",
    ),
    ReadingTypeSpec(
        "kw_md_register",
        "Maximum demand kW (billing period)",
        "1.0.1.6.0.255",
        "kW",
        None,
        accumulation="instant",
    ),
    ReadingTypeSpec(
        "kva_md_register",
        "Maximum demand kVA (billing period)",
        "1.0.9.6.0.255",
        "kVA",
        None,
        accumulation="instant",
    ),
    # instantaneous profile (IS 15959): read as registers at the read time
    ReadingTypeSpec(
        "voltage_instant", "Voltage, instantaneous", "1.0.12.7.0.255", "V", None, accumulation="instant"
    ),
    ReadingTypeSpec(
        "pf_instant", "Power factor, instantaneous", "1.0.13.7.0.255", "PF", None, accumulation="instant"
    ),
)

#: Time-of-use tier registers (IS 15959 / DLMS: E = 1..8 of the cumulative energy register
#: 1.0.1.8.E.255 and 1.0.9.8.E.255; E = 0 is the total). The tiers of a meter sum to its total.
TOU_TIERS = 4
CATALOGUE += tuple(
    ReadingTypeSpec(
        f"{q}_import_register_t{t}",
        f"Cumulative {name} energy import, TOU tier {t}",
        f"1.0.{c}.8.{t}.255",
        unit,
        None,
        accumulation="cumulative",
    )
    for q, name, c, unit in (("kwh", "active", 1, "kWh"), ("kvah", "apparent", 9, "kVAh"))
    for t in range(1, TOU_TIERS + 1)
)

BY_CODE = {spec.code: spec for spec in CATALOGUE}


def tou_tier(obis: str | None) -> int:
    """The TOU tier of a cumulative energy register from its OBIS code (``A.B.C.8.E.F``): ``E``
    for tiers 1..63, 0 for the total register and for any other reading type."""
    parts = (obis or "").split(".")
    if len(parts) != 6 or parts[3] != "8" or not parts[4].isdigit():
        return 0
    tier = int(parts[4])
    return tier if 0 < tier < 64 else 0


def ensure_catalogue(session: Session) -> dict[str, ReadingType]:
    """Create any missing standard reading types; return all reading types by code."""
    existing = {rt.code: rt for rt in session.scalars(select(ReadingType))}
    for spec in CATALOGUE:
        if spec.code not in existing:
            rt = ReadingType(
                code=spec.code,
                name=spec.name,
                obis=spec.obis,
                unit=spec.unit,
                interval_s=spec.interval_s,
                direction=spec.direction,
                accumulation=spec.accumulation,
            )
            session.add(rt)
            existing[spec.code] = rt
    session.flush()
    return existing
