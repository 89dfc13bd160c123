"""``m2c tariff``: validate, load and show tariff files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from meter2cash.cis.tariffs.definitions import TariffDefinition
from meter2cash.cis.tariffs.loader import TariffFileError
from meter2cash.cli.common import console, day, err_console, platform, read_text, reading
from meter2cash.cli.errors import EXIT_FATAL, report
from meter2cash.cli.render import Num, print_json, table
from meter2cash.core.errors import M2CError

app = typer.Typer(help="Tariffs: validate, load and show tariff files.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="print the result as JSON")


def read_tariff(path: Path) -> tuple[TariffDefinition, str]:
    """A tariff file validated, with its text (``input.*`` codes when it cannot be read,
    :class:`TariffFileError` naming every bad field)."""
    from meter2cash.cis.tariffs.loader import parse_tariff

    text = read_text(path)
    with reading(path):
        return parse_tariff(text, str(path)), text


def tariff_or_exit(path: Path) -> tuple[TariffDefinition, str]:
    """:func:`read_tariff`, or the bad fields listed on stderr and exit 2 (nothing done)."""
    try:
        return read_tariff(path)
    except TariffFileError as exc:
        _print_problems(path, exc)
        raise typer.Exit(EXIT_FATAL) from exc


def _print_problems(path: Path, exc: TariffFileError) -> None:
    err_console.print(f"[red]invalid[/red] {escape(str(path))}", highlight=False)
    for p in exc.problems:
        err_console.print(
            f"  {escape(p.field or '')}: {escape(p.message)}  [dim]({p.code})[/dim]", highlight=False
        )


@app.command("validate")
def tariff_validate(
    files: list[Path] = typer.Argument(..., help="tariff TOML files"), as_json: bool = JSON_OPTION
) -> None:
    """Check tariff files: exit 1 naming every bad field of a file that does not validate, 2 when a
    file cannot be read (not UTF-8, missing); the other files are checked all the same."""
    results: list[dict[str, Any]] = []
    for f in files:
        try:
            d, _ = read_tariff(f)
        except TariffFileError as exc:
            results.append({"file": str(f), "ok": False, "problems": [p.to_dict() for p in exc.problems]})
            if not as_json:
                _print_problems(f, exc)
            continue
        except M2CError as exc:
            results.append({"file": str(f), "ok": False, "error": exc.to_dict()})
            if not as_json:
                report(exc)
            continue
        results.append({"file": str(f), "ok": True, "code": d.code, "versions": len(d.versions)})
        if not as_json:
            console.print(f"[green]ok[/green] {escape(str(f))}: {d.code} with {len(d.versions)} version(s)")
    if as_json:
        print_json({"files": results})
    if any("error" in r for r in results):
        raise typer.Exit(EXIT_FATAL)
    if not all(r["ok"] for r in results):
        raise typer.Exit(1)


@app.command("load")
def tariff_load(
    files: list[Path] = typer.Argument(..., help="tariff TOML files"), as_json: bool = JSON_OPTION
) -> None:
    """Validate and store tariff files (idempotent; a changed version is refused). Nothing is
    stored unless every file validates (exit 2 naming the bad fields)."""
    from meter2cash.cis.tariffs.loader import store_tariff
    from meter2cash.db import transaction

    defs = [tariff_or_exit(f) for f in files]
    loaded = []
    with platform() as p, transaction(p.sessions) as s:
        for d, text in defs:
            rows = store_tariff(s, d, text)
            loaded.append({"code": d.code, "versions_from": [r.effective_from.isoformat() for r in rows]})
    if as_json:
        print_json({"loaded": loaded})
        return
    for item in loaded:
        console.print(f"loaded {item['code']}: versions from {', '.join(item['versions_from'])}")


@app.command("show")
def tariff_show(
    code: str,
    on: str = typer.Option("", help="date YYYY-MM-DD (default: today)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the version of a tariff in effect on a day."""
    from meter2cash.cis.tariffs.loader import tariff_version_for, version_json

    with platform() as p, p.sessions() as s:
        when = day(on, "--on") if on else datetime.now(p.settings.tz).date()
        row, v = tariff_version_for(s, code, when)
    if as_json:
        print_json({"code": code, "effective_from": row.effective_from, "version": version_json(v)})
        return
    title = f"{code} — {v.name} ({v.currency}, {v.customer_class}) from {row.effective_from}"
    out = table(title, "Component", "Detail", Num("Rate"))
    for component, detail, rate in _components(v):
        out.add_row(component, detail, rate)
    console.print(out)


def _components(v: Any) -> list[tuple[str, str, str]]:
    """(component, detail, rate) rows of a tariff version, in the order of its file."""
    rows: list[tuple[str, str, str]] = []
    add = rows.append
    for attr, detail in (
        ("per_month", "per month"),
        ("per_kw_month", "per kW sanctioned load per month"),
        ("per_day", "per day of supply"),
        ("per_kva_month", "per kVA contract demand per month"),
    ):
        if getattr(v.fixed, attr):
            add(("fixed", detail, str(getattr(v.fixed, attr))))
    if v.energy:
        unit = "kVAh" if v.energy.basis == "kvah" else "kWh"
        for k, tab in enumerate(v.energy.all_tables):
            lo = "0"
            within = f" if total ≤ {tab.upto}" if tab.upto is not None else (" otherwise" if k else "")
            for slab in tab.slabs:
                hi = str(slab.upto) if slab.upto is not None else "∞"
                add((f"energy ({tab.method}){within}", f"{lo}–{hi} {unit}", str(slab.rate)))
                lo = hi
    if v.tou:
        for per in v.tou.periods:
            months = f" months {','.join(map(str, per.months))}" if per.months else ""
            when = f"{per.name} {per.start}–{per.end} {'/'.join(per.days)}{months}"
            if per.rate is not None:
                add(("tou", f"{when}: rate", str(per.rate)))
            elif per.adder is not None:
                add(("tou", f"{when}: adder", str(per.adder)))
            else:
                rates = ", ".join(str(r) for r in per.slab_rates or [])
                add(("tou", f"{when}: slab rates ({v.tou.tier_split})", rates))
    if v.demand:
        dm = v.demand
        floors = [
            f"{label} {pct}%"
            for label, pct in (
                ("sanctioned", dm.floor_percent),
                ("contract", dm.contract_percent),
                (f"ratchet {dm.ratchet_months} months", dm.ratchet_percent),
            )
            if pct
        ]
        extra = f" ≥ {', '.join(floors)}" if floors else ""
        add(("demand", f"per kW billing demand ({dm.interval_s // 60}-min){extra}", str(dm.rate_per_kw)))
        for name, rate in dm.by_period.items():
            add(("demand", f"per kW max demand in {name}", str(rate)))
    if v.power_factor:
        pf = v.power_factor
        add((
            "power factor",
            f"below {pf.reference}: +{pf.penalty_percent}% per {pf.step}; above {pf.incentive_above}: "
            f"-{pf.incentive_percent}% per {pf.step}; on {', '.join(pf.on)}",
            "",
        ))  # fmt: skip
    if v.minimum:
        add(("minimum", f"per month on {', '.join(v.minimum.on)}", str(v.minimum.per_month)))
    if v.fuel_adjustment:
        for month, rate in sorted(v.fuel_adjustment.per_kwh.items()):
            add(("fuel adjustment", f"{month} per kWh", str(rate)))
    if v.net_metering:
        nm = v.net_metering
        add(
            ("net metering", f"{nm.mode}, true-up month {nm.true_up_month}; export rate", str(nm.export_rate))
        )
    pt = v.payment_terms
    if pt.prompt_percent:
        add(("terms", f"prompt-payment rebate within {pt.prompt_days} days", f"{pt.prompt_percent}%"))
    if pt.late_percent:
        add(("terms", "late-payment surcharge per month", f"{pt.late_percent}%"))
    for t in v.taxes:
        add(("tax", f"{t.name} on {', '.join(t.on)}", f"{t.percent}%"))
    if v.prepaid_discount_per_kwh:
        add(("prepaid discount", "per kWh", str(v.prepaid_discount_per_kwh)))
    return rows
