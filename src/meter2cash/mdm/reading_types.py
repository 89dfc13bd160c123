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

#: Instantaneous profile (1.0.94.91.0.255) parameters, block-load averages, the billing-period
#: average power factor and the maximum-demand reset counter (IS 15959 / DLMS). OBIS value group C
#: names the quantity (1 active power +, 9 apparent power +, 11/12/13 current, voltage, power
#: factor without phase; 31/32/33, 51/52/53, 71/72/73 the same for phases L1 (R), L2 (Y), L3 (B);
#: 91 neutral current); D names the processing (7 instantaneous, 27 average over the block,
#: 0 average over the billing period, 6 maximum demand, 8 cumulative energy).
CATALOGUE += (
    ReadingTypeSpec(
        "kw_instant",
        "Active power import, instantaneous",
        "1.0.1.7.0.255",
        "kW",
        None,
        accumulation="instant",
    ),
    ReadingTypeSpec(
        "kva_instant",
        "Apparent power import, instantaneous",
        "1.0.9.7.0.255",
        "kVA",
        None,
        accumulation="instant",
    ),
    ReadingTypeSpec(
        "current_instant", "Current, instantaneous", "1.0.11.7.0.255", "A", None, accumulation="instant"
    ),
    ReadingTypeSpec(
        "current_neutral_instant",
        "Neutral current, instantaneous",
        "1.0.91.7.0.255",
        "A",
        None,
        accumulation="instant",
    ),
    ReadingTypeSpec(
        "pf_average_register",
        "Average power factor (billing period)",
        "1.0.13.0.0.255",
        "PF",
        None,
        accumulation="instant",
    ),
    ReadingTypeSpec(
        "md_reset_count",
        "Maximum demand resets (billing periods closed)",
        "0.0.0.1.0.255",
        "count",
        None,
        accumulation="cumulative",
    ),
)
CATALOGUE += tuple(
    ReadingTypeSpec(
        f"{q}_{phase.lower()}_instant",
        f"{name}, phase {phase}, instantaneous",
        f"1.0.{c}.7.0.255",
        unit,
        None,
        accumulation="instant",
    )
    for q, name, unit, offset in (
        ("current", "Current", "A", 1),
        ("voltage", "Voltage", "V", 2),
        ("pf", "Power factor", "PF", 3),
    )
    for phase, c in (("R", 30 + offset), ("Y", 50 + offset), ("B", 70 + offset))
)
CATALOGUE += tuple(
    ReadingTypeSpec(
        f"{q}_avg_{minutes}m",
        f"{name}, average over the {minutes}-min block",
        f"1.0.{c}.27.0.255",
        unit,
        minutes * 60,
        accumulation="instant",
    )
    for q, name, c, unit in (("voltage", "Voltage", 12, "V"), ("current", "Current", 11, "A"))
    for minutes in (15, 30)
)

BY_CODE = {spec.code: spec for spec in CATALOGUE}

#: OBIS value group D of an instantaneous value (IEC 62056-61).
_D_INSTANTANEOUS = "7"


def reading_kind(spec: ReadingTypeSpec) -> str:
    """``interval`` for a block-load channel, ``instantaneous`` for an instantaneous-profile value
    (OBIS ``D = 7``), ``register`` for any other scalar (cumulative energy, maximum demand with its
    capture time, billing-period averages and counters)."""
    if spec.interval_s is not None:
        return "interval"
    parts = spec.obis.split(".")
    if len(parts) == 6 and parts[3] == _D_INSTANTANEOUS:
        return "instantaneous"
    return "register"


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
