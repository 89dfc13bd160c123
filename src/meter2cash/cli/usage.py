"""``m2c usage``: determinants across the MDM–CIS boundary (docs/formats.md#determinants).

``load`` takes an external MDM's determinants; ``show`` and ``export`` give out ours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from meter2cash.cli.common import console, day, err_console, platform, reading
from meter2cash.cli.render import Num, print_json, quantity, table

app = typer.Typer(
    help="Determinants: load an external MDM's, show and export this MDM's.", no_args_is_help=True
)
JSON_OPTION = typer.Option(False, "--json", help="print the result as JSON")
FROM_OPTION = typer.Option(..., "--from", help="first local day, YYYY-MM-DD")
TO_OPTION = typer.Option(..., "--to", help="last local day (inclusive), YYYY-MM-DD")
TARIFF_OPTION = typer.Option(None, "--tariff", help="tariff code: its TOU periods and demand interval")


def _problems(problems: list[dict[str, Any]]) -> None:
    for p in problems[:20]:
        where = p.get("field") or p.get("service_point") or ""
        err_console.print(f"  {escape(str(where))}: {p['code']} {escape(str(p['message']))}", highlight=False)
    if len(problems) > 20:
        err_console.print(f"  … and {len(problems) - 20} more (--json lists them all)")


@app.command("load")
def load(
    path: Path = typer.Argument(..., help="a determinants document (JSON)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Store an external MDM's determinants; good records are committed, bad ones listed.

    Exit 1 when some records were refused, 2 when none was accepted or the file is no
    determinants document."""
    from meter2cash.integration.determinants import deliver
    from meter2cash.mdm.usage.format import parse_determinants

    with platform() as p, p.sessions() as session:
        with reading(path):
            parsed = parse_determinants(path.read_bytes(), max_depth=p.settings.max_json_depth)
        result = deliver(session, parsed, received_by="cli")
        session.commit()
    out = result.to_dict()
    if as_json:
        print_json(out)
    else:
        counts = ", ".join(f"{n} {k}" for k, n in out["outcomes"].items()) or "none"
        console.print(
            f"{escape(str(path))}: {out['accepted']} of {out['records']} records accepted ({counts}),"
            f" {out['refused']} refused",
            highlight=False,
        )
        _problems(out["problems"])
    if out["refused"]:
        raise typer.Exit(2 if not out["accepted"] else 1)


def _export(codes: list[str] | None, from_: str, to: str, tariff: str | None) -> dict[str, Any]:
    from meter2cash.integration.determinants import export_determinants
    from meter2cash.mdm.usage.local import LocalUsage

    first, last = day(from_, "--from"), day(to, "--to")
    with platform() as p, p.sessions() as session:
        return export_determinants(
            session, LocalUsage(session), codes, first, last, tz=p.settings.timezone, tariff=tariff
        ).to_dict()


@app.command("show")
def show(
    service_point: str = typer.Argument(..., help="service point code"),
    from_: str = FROM_OPTION,
    to: str = TO_OPTION,
    tariff: str | None = TARIFF_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """This MDM's determinants of one service point over local days."""
    from meter2cash.core.errors import InvalidInput, NotFound
    from meter2cash.mdm.usage.format import TOTAL

    out = _export([service_point], from_, to, tariff)
    if out["problems"]:
        p = out["problems"][0]
        error = NotFound if p["code"].endswith(".not_found") else InvalidInput
        raise error(f"{service_point}: {p['message']}", code=p["code"])
    if as_json:
        print_json(out)
        return
    rec = out["determinants"][0]
    console.print(
        f"{rec['service_point']}: {rec['from']} to {rec['to']}, local days in {out['timezone']}",
        highlight=False,
    )
    grid = table(
        None,
        "Period",
        Num("kWh"),
        Num("Max kW"),
    )
    for name in rec["tou_periods"]:
        grid.add_row(
            name,
            quantity(rec["kwh_by_period"][name], grouped=True),
            quantity(rec["max_demand_kw_by_period"][name], grouped=True),
        )
    if rec["tou_periods"] != [TOTAL]:
        grid.add_row(
            "total",
            quantity(rec["kwh_total"], grouped=True),
            quantity(rec["max_demand_kw"], grouped=True),
            style="bold",
        )
    console.print(grid)
    extra = [
        f"{rec['valid_intervals']:,} intervals of {rec['interval_s']} s",
        f"demand over {rec['demand_interval_s']} s",
        f"estimated share {quantity(rec['estimated_share'])}",
        f"missing share {quantity(rec['missing_share'])}",
    ]
    if rec["kvah_total"] is not None:
        extra.append(f"kVAh {quantity(rec['kvah_total'], grouped=True)}")
    if rec["kwh_export"] is not None:
        extra.append(f"export {quantity(rec['kwh_export'], grouped=True)} kWh")
    extra.append(f"version {rec['version']}")
    console.print("\n".join(extra), highlight=False)


@app.command("export")
def export(
    service_points: list[str] = typer.Argument(None, help="service point codes (default: every one)"),
    from_: str = FROM_OPTION,
    to: str = TO_OPTION,
    tariff: str | None = TARIFF_OPTION,
) -> None:
    """Write this MDM's determinants as a determinants document on stdout (> file.json);
    service points without any are listed on stderr and in the document's "problems".

    Exit 1 when some service point has none."""
    out = _export(service_points or None, from_, to, tariff)
    typer.echo(json.dumps(out, indent=1, ensure_ascii=False))
    if out["problems"]:
        _problems(out["problems"])
        raise typer.Exit(1)
